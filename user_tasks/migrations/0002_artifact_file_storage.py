"""Store artifact files in the configured artifact storage (no schema change)."""
from django.db import migrations, models

import user_tasks.conf


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usertaskartifact',
            name='file',
            field=models.FileField(blank=True, null=True, storage=user_tasks.conf.get_storage, upload_to='user_tasks/%Y/%m/%d/'),
        ),
    ]

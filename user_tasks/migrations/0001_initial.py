"""Create both tables, as django-user-tasks first shipped them."""
import uuid

import django.db.models.deletion
import django.utils.timezone
import model_utils.fields
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='UserTaskArtifact',
            fields=[
                ('id', models.AutoField(verbose_name='ID', serialize=False, auto_created=True, primary_key=True)),
                ('created', model_utils.fields.AutoCreatedField(default=django.utils.timezone.now, verbose_name='created', editable=False)),
                ('modified', model_utils.fields.AutoLastModifiedField(default=django.utils.timezone.now, verbose_name='modified', editable=False)),
                ('uuid', models.UUIDField(default=uuid.uuid4, help_text='Unique identifier for this artifact', unique=True, editable=False)),
                ('name', models.CharField(default='Output', help_text='Distinguishes between multiple artifact types for the same task', max_length=255)),
                ('file', models.FileField(null=True, upload_to='user_tasks/%Y/%m/%d/', blank=True)),
                ('url', models.URLField(blank=True)),
                ('text', models.TextField(blank=True)),
            ],
        ),
        migrations.CreateModel(
            name='UserTaskStatus',
            fields=[
                ('id', models.AutoField(verbose_name='ID', serialize=False, auto_created=True, primary_key=True)),
                ('created', model_utils.fields.AutoCreatedField(default=django.utils.timezone.now, verbose_name='created', editable=False)),
                ('modified', model_utils.fields.AutoLastModifiedField(default=django.utils.timezone.now, verbose_name='modified', editable=False)),
                ('uuid', models.UUIDField(default=uuid.uuid4, help_text='Unique identifier for this task', unique=True, editable=False)),
                ('task_id', models.CharField(help_text='UUID of the Celery task', unique=True, max_length=128)),
                ('is_container', models.BooleanField(default=False, help_text='True if this status corresponds to a container of multiple tasks')),
                ('task_class', models.CharField(help_text='Fully qualified class name of the task being performed', max_length=128)),
                ('name', models.CharField(help_text='A name for this task which the triggering user will understand', max_length=255)),
                ('state', models.CharField(default='Pending', max_length=128)),
                ('completed_steps', models.PositiveSmallIntegerField(default=0)),
                ('total_steps', models.PositiveSmallIntegerField()),
                ('attempts', models.PositiveSmallIntegerField(default=1, help_text='How many times has execution been attempted?')),
                ('parent', models.ForeignKey(blank=True, help_text='Status of the containing task group or chain, if any', null=True, on_delete=django.db.models.deletion.CASCADE, to='user_tasks.UserTaskStatus')),
                ('user', models.ForeignKey(help_text='The user who triggered the task', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'user task statuses',
            },
        ),
        migrations.AddField(
            model_name='usertaskartifact',
            name='status',
            field=models.ForeignKey(related_name='artifacts', on_delete=django.db.models.deletion.CASCADE, to='user_tasks.UserTaskStatus'),
        ),
    ]

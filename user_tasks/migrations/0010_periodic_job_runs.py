"""
When the periodic jobs last ran, and an index on the rows still running or waiting.

- ``PeriodicJobRun``: one row per job (``reaper``, ``purge``) with its last run, written by
  the job and read by the metrics view of every web process.
- ``(finished, state, task_class)``: the metrics view counts the unfinished rows by state
  and task at each scrape; ``finished IS NULL`` leads, so it reads only those rows.
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0009_translatable_states'),
    ]

    operations = [
        migrations.CreateModel(
            name='PeriodicJobRun',
            fields=[
                ('id', models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job', models.CharField(max_length=64, unique=True)),
                ('last_run', models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name='usertaskstatus',
            index=models.Index(fields=['finished', 'state', 'task_class'], name='usertask_active_idx'),
        ),
    ]

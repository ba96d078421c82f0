"""
OEP-3: identical concurrent tasks, and trying a failed task again.

- ``concurrency_key``: set at publish for a task class that defines ``concurrency_key()``
  and cleared by the transition that ends the row; the unique constraint on
  ``(user, task_class, concurrency_key)`` lets only one active task per key exist.  NULLs
  are distinct in unique indexes on PostgreSQL, MariaDB/MySQL and SQLite, so rows without
  a key (every row written before this migration) never clash.
- ``arguments``: the JSON arguments of a ``retryable`` task, kept for Failed and Canceled rows.
- ``retried_as``: the uuid of the task that tried this one again (a plain uuid, not a
  foreign key: purge deletes rows in raw batches, in any order).

All three are nullable and additive; reversing the migration drops them.
"""
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0007_indexes_for_lists_and_purge'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='usertaskstatus',
            name='concurrency_key',
            field=models.CharField(blank=True, editable=False, help_text='Identifies identical tasks while this one is active; cleared when it ends', max_length=255, null=True),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='arguments',
            field=models.JSONField(blank=True, editable=False, help_text='The arguments of a retryable task, to try it again', null=True),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='retried_as',
            field=models.UUIDField(blank=True, editable=False, help_text='The uuid of the task that tried this one again', null=True),
        ),
        migrations.AddConstraint(
            model_name='usertaskstatus',
            constraint=models.UniqueConstraint(fields=('user', 'task_class', 'concurrency_key'), name='usertask_active_key_uniq'),
        ),
    ]

"""
Indexes for the newest-first lists and for purge.

- ``(user, created, id)``: a user's tasks, newest first (REST list, status pages).
- ``(created, id)`` on both tables: everyone's rows newest first (superuser list, admin).
- ``(state, finished)``: purge and the reaper look up rows by state and completion time.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0006_widen_counters_and_lifecycle_timestamps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='usertaskartifact',
            index=models.Index(fields=['created', 'id'], name='usertaskartifact_created_idx'),
        ),
        migrations.AddIndex(
            model_name='usertaskstatus',
            index=models.Index(fields=['user', 'created', 'id'], name='usertask_user_created_idx'),
        ),
        migrations.AddIndex(
            model_name='usertaskstatus',
            index=models.Index(fields=['created', 'id'], name='usertask_created_idx'),
        ),
        migrations.AddIndex(
            model_name='usertaskstatus',
            index=models.Index(fields=['state', 'finished'], name='usertask_state_finished_idx'),
        ),
    ]

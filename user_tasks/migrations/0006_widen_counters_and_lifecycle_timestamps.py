"""
Widen the step and attempt counters, and add the recovery timestamps.

Upstream's PositiveSmallIntegerFields overflow at 32,767 steps (a large course
import has more); PositiveIntegerField holds up to 2**31 - 1.  ``started``,
``heartbeat`` and ``finished`` let the reaper find tasks orphaned by dead workers
and let purge count a task's age from its completion; rows from before this
migration leave them empty and fall back to ``modified``.
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0005_mariadb_uuid_conversion'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usertaskstatus',
            name='completed_steps',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='total_steps',
            field=models.PositiveIntegerField(),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='attempts',
            field=models.PositiveIntegerField(default=1, help_text='How many times has execution been attempted?'),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='started',
            field=models.DateTimeField(blank=True, editable=False, null=True, help_text='When a worker last started running the task'),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='heartbeat',
            field=models.DateTimeField(blank=True, editable=False, null=True, help_text='When the worker running the task last showed it was alive'),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='finished',
            field=models.DateTimeField(blank=True, editable=False, null=True, help_text='When the task reached a final state and stopped running'),
        ),
    ]

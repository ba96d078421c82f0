"""
Translatable custom states and translated labels.

- ``state_msgid`` / ``state_params`` (nullable, so rows written by 4.0 code stay valid): the
  message id and parameters of a custom state; ``state`` keeps its English text.
- Verbose names and help texts marked for translation (no SQL: labels only).
"""

import uuid

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import user_tasks.conf


class Migration(migrations.Migration):

    dependencies = [
        ('user_tasks', '0008_oep3_concurrency_key_arguments_retried_as'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='usertaskartifact',
            options={'verbose_name': 'user task artifact', 'verbose_name_plural': 'user task artifacts'},
        ),
        migrations.AlterModelOptions(
            name='usertaskstatus',
            options={'verbose_name': 'user task status', 'verbose_name_plural': 'user task statuses'},
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='state_msgid',
            field=models.TextField(blank=True, editable=False, help_text='The message id of a custom state set with parameters', null=True, verbose_name='state message id'),
        ),
        migrations.AddField(
            model_name='usertaskstatus',
            name='state_params',
            field=models.JSONField(blank=True, editable=False, help_text="The parameters of the custom state's message", null=True, verbose_name='state parameters'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='file',
            field=models.FileField(blank=True, null=True, storage=user_tasks.conf.get_storage, upload_to='user_tasks/%Y/%m/%d/', verbose_name='file'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='name',
            field=models.CharField(default='Output', help_text='Distinguishes between multiple artifact types for the same task', max_length=255, verbose_name='name'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='status',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='artifacts', to='user_tasks.usertaskstatus', verbose_name='status'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='text',
            field=models.TextField(blank=True, verbose_name='text'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='url',
            field=models.TextField(blank=True, validators=[django.core.validators.URLValidator()], verbose_name='url'),
        ),
        migrations.AlterField(
            model_name='usertaskartifact',
            name='uuid',
            field=models.UUIDField(default=uuid.uuid4, editable=False, help_text='Unique identifier for this artifact', unique=True, verbose_name='uuid'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='arguments',
            field=models.JSONField(blank=True, editable=False, help_text='The arguments of a retryable task, to try it again', null=True, verbose_name='arguments'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='attempts',
            field=models.PositiveIntegerField(default=1, help_text='How many times has execution been attempted?', verbose_name='attempts'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='completed_steps',
            field=models.PositiveIntegerField(default=0, verbose_name='completed steps'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='concurrency_key',
            field=models.CharField(blank=True, editable=False, help_text='Identifies identical tasks while this one is active; cleared when it ends', max_length=255, null=True, verbose_name='concurrency key'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='finished',
            field=models.DateTimeField(blank=True, editable=False, help_text='When the task reached a final state and stopped running', null=True, verbose_name='finished'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='heartbeat',
            field=models.DateTimeField(blank=True, editable=False, help_text='When the worker running the task last showed it was alive', null=True, verbose_name='heartbeat'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='is_container',
            field=models.BooleanField(default=False, help_text='True if this status corresponds to a container of multiple tasks', verbose_name='is container'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='name',
            field=models.CharField(help_text='A name for this task which the triggering user will understand', max_length=255, verbose_name='name'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='parent',
            field=models.ForeignKey(blank=True, help_text='Status of the containing task group or chain, if any', null=True, on_delete=django.db.models.deletion.CASCADE, to='user_tasks.usertaskstatus', verbose_name='parent'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='retried_as',
            field=models.UUIDField(blank=True, editable=False, help_text='The uuid of the task that tried this one again', null=True, verbose_name='retried as'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='started',
            field=models.DateTimeField(blank=True, editable=False, help_text='When a worker last started running the task', null=True, verbose_name='started'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='state',
            field=models.CharField(default='Pending', max_length=128, verbose_name='state'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='task_class',
            field=models.CharField(help_text='Fully qualified class name of the task being performed', max_length=128, verbose_name='task class'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='task_id',
            field=models.CharField(help_text='UUID of the Celery task', max_length=128, unique=True, verbose_name='task id'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='total_steps',
            field=models.PositiveIntegerField(verbose_name='total steps'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='user',
            field=models.ForeignKey(help_text='The user who triggered the task', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL, verbose_name='user'),
        ),
        migrations.AlterField(
            model_name='usertaskstatus',
            name='uuid',
            field=models.UUIDField(default=uuid.uuid4, editable=False, help_text='Unique identifier for this task', unique=True, verbose_name='uuid'),
        ),
    ]

"""Public names of django-user-tasks 4.0 (docs/upgrading.rst) but the REST, rules and admin ones; migrations."""
import importlib

import pytest
from django.core.management import call_command
from django.dispatch import Signal

PUBLIC = {
    'user_tasks': ['__version__', 'user_task_stopped'],
    'user_tasks.apps': ['UserTasksConfig'],
    'user_tasks.models': ['UserTaskStatus', 'UserTaskArtifact'],
    'user_tasks.tasks': ['UserTaskMixin', 'UserTask', 'purge_old_user_tasks'],
    'user_tasks.signals': ['create_user_task', 'start_user_task', 'task_failed', 'retrying_task', 'task_succeeded',
                           'user_task_stopped', 'celery_app', 'transaction', 'close_old_connections'],
    'user_tasks.utils': ['proto2_to_proto1', 'extract_proto2_headers', 'extract_proto2_embed', 'chain'],
    'user_tasks.conf': ['settings', 'get_storage'],
    'user_tasks.exceptions': ['TaskCanceledException'],
    'user_tasks.filters': ['StatusFilterBackend', 'ArtifactFilterBackend'],
}


@pytest.mark.parametrize('module, name', [(m, n) for m, names in PUBLIC.items() for n in names])
def test_public_name_imports(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_version_and_signal():
    import user_tasks
    from user_tasks import signals
    assert isinstance(user_tasks.__version__, str) and user_tasks.__version__.startswith('5.')
    assert isinstance(user_tasks.user_task_stopped, Signal)
    assert signals.user_task_stopped is user_tasks.user_task_stopped


def test_app_config():
    from django.apps import apps
    config = apps.get_app_config('user_tasks')
    assert (type(config).__name__, config.name, config.label) == ('UserTasksConfig', 'user_tasks', 'user_tasks')


def test_exception_is_runtime_error():
    from user_tasks.exceptions import TaskCanceledException
    assert issubclass(TaskCanceledException, RuntimeError)


def test_signals_module_attributes_are_the_real_ones():
    from celery import current_app
    from django import db

    from user_tasks import signals
    assert signals.celery_app is current_app
    assert signals.transaction is db.transaction
    assert signals.close_old_connections is db.close_old_connections


def test_celery_app_protocol_read_at_call_time(celery_app):
    from user_tasks import signals
    celery_app.conf.task_protocol = 1
    assert signals.celery_app.conf.task_protocol == 1


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command('makemigrations', 'user_tasks', '--check', '--dry-run', verbosity=0)

"""System checks of every USER_TASKS_* setting, and the purge and reaper refusing bad values."""
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.utils import timezone

from tests.rest_helpers import create_status
from user_tasks import checks
from user_tasks.models import UserTaskStatus
from user_tasks.recovery import reap
from user_tasks.retention import purge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = [
    ('USER_TASKS_MAX_AGE', 3600, 'E001'),
    ('USER_TASKS_MAX_AGE', timedelta(days=-1), 'E001'),
    ('USER_TASKS_STATUS_FILTERS', 'user_tasks.filters.StatusFilterBackend', 'E002'),
    ('USER_TASKS_STATUS_FILTERS', ('no.such.Backend',), 'E002'),
    ('USER_TASKS_ARTIFACT_FILTERS', [42], 'E003'),
    ('USER_TASKS_ARTIFACT_STORAGE', 'no.such.Storage', 'E004'),
    ('USER_TASKS_HEARTBEAT_INTERVAL', '30', 'E005'),
    ('USER_TASKS_HEARTBEAT_INTERVAL', 0, 'E005'),
    ('USER_TASKS_STALE_AFTER', timedelta(0), 'E006'),
    ('USER_TASKS_STALE_AFTER', '10m', 'E006'),
    ('USER_TASKS_PENDING_TIMEOUT', -5, 'E007'),
    ('USER_TASKS_MAX_AGE_BY_STATE', {'Failed': 3600}, 'E008'),
    ('USER_TASKS_MAX_AGE_BY_STATE', {'In Progress': timedelta(days=1)}, 'E008'),
    ('USER_TASKS_PURGE_BATCH_SIZE', -1, 'E009'),
    ('USER_TASKS_PURGE_BATCH_SIZE', 10.5, 'E009'),
    ('USER_TASKS_PURGE_BATCH_SIZE', True, 'E009'),
    ('USER_TASKS_TERMINATE_AFTER', {'tests.tasks.sample_task': '5'}, 'E010'),
    ('USER_TASKS_TERMINATE_AFTER', [('a', 1)], 'E010'),
    ('USER_TASKS_PUBLISH_ON_COMMIT', 'yes', 'E011'),
    ('USER_TASKS_METRICS_PORT', 70000, 'E012'),
    ('USER_TASKS_METRICS_PORT', '9100', 'E012'),
    ('USER_TASKS_METRICS_TOKEN', '', 'E013'),
    ('USER_TASKS_METRICS_TOKEN', 1234, 'E013'),
    ('USER_TASKS_ARTIFACT_DOWNLOADS', 'false', 'E014'),
    ('USER_TASKS_MAX_ACTIVE_PER_USER', {'tests.tasks.limited_task': '3'}, 'E015'),
    ('USER_TASKS_MAX_ACTIVE_PER_USER', {'tests.tasks.limited_task': -1}, 'E015'),
    ('USER_TASKS_MAX_ACTIVE_PER_USER', [('tests.tasks.limited_task', 3)], 'E015'),
    ('USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES', 0, 'E016'),
    ('USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES', '64k', 'E016'),
    ('USER_TASKS_METRICS_ADDRESS', '', 'E020'),
    ('USER_TASKS_METRICS_ADDRESS', 9101, 'E020'),
    ('USER_TASKS_METRICS_DATABASE_GAUGES', 'no', 'E021'),
    ('USER_TASKS_TRACE_EXCEPTION_MESSAGES', 1, 'E022'),
    ('USER_TASKS_STATUS_CONNECTION', 'on', 'E023'),
    ('USER_TASKS_STATUS_ASYNC_COMMIT', 1, 'E024'),
]


def test_every_setting_has_a_check():
    from user_tasks.conf import DEFAULTS
    assert set(checks.RULES) == set(DEFAULTS)
    assert len({rule[0] for rule in checks.RULES.values()}) == len(checks.RULES)


def test_defaults_and_good_values_pass(settings):
    assert checks.check_settings() == []
    settings.USER_TASKS_STALE_AFTER = 600
    settings.USER_TASKS_MAX_AGE_BY_STATE = {'Failed': timedelta(days=90)}
    settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sleepy_task': 0.5}
    settings.USER_TASKS_METRICS_PORT = 9100
    settings.USER_TASKS_METRICS_ADDRESS = '0.0.0.0'
    settings.USER_TASKS_METRICS_DATABASE_GAUGES = False
    settings.USER_TASKS_TRACE_EXCEPTION_MESSAGES = True
    settings.USER_TASKS_STATUS_FILTERS = ['user_tasks.filters.StatusFilterBackend']
    settings.USER_TASKS_MAX_ACTIVE_PER_USER = {'tests.tasks.limited_task': 3, 'tests.tasks.sample_task': None}
    settings.USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES = 1024
    assert checks.check_settings() == []


@pytest.mark.parametrize('name, value, check_id', BAD)
def test_a_wrong_value_is_one_error_naming_the_setting(settings, name, value, check_id):
    setattr(settings, name, value)
    errors = checks.check_settings()
    assert [error.id for error in errors] == [f'user_tasks.{check_id}']
    assert errors[0].msg.startswith(f'{name} must be ') and repr(value) in errors[0].msg


def test_manage_py_check_fails_on_a_wrong_value(settings):
    settings.USER_TASKS_MAX_AGE = 3600
    with pytest.raises(SystemCheckError, match=r'user_tasks\.E001.*USER_TASKS_MAX_AGE must be a positive'):
        call_command('check')


@pytest.mark.django_db
@pytest.mark.parametrize('name, value, check_id', [
    ('USER_TASKS_MAX_AGE', 3600, 'E001'), ('USER_TASKS_MAX_AGE', timedelta(days=-30), 'E001'),
    ('USER_TASKS_MAX_AGE_BY_STATE', {'Succeeded': -timedelta(days=1)}, 'E008'),
    ('USER_TASKS_PURGE_BATCH_SIZE', -1, 'E009'),
])
def test_purge_refuses_a_wrong_value_and_deletes_nothing(settings, user, name, value, check_id):
    young = create_status(user, 1, state=UserTaskStatus.SUCCEEDED, finished=timezone.now())
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=rf'^{name} must be .*\(user_tasks\.{check_id}\)$'):
        purge()
    with pytest.raises(CommandError, match=name):
        call_command('purge_old_user_tasks')
    assert UserTaskStatus.objects.filter(pk=young.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize('name, value', [('USER_TASKS_STALE_AFTER', '10m'), ('USER_TASKS_PENDING_TIMEOUT', 0)])
def test_reaper_refuses_a_wrong_value(settings, user, name, value):
    running = create_status(user, 1, state=UserTaskStatus.IN_PROGRESS)
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        reap()
    with pytest.raises(CommandError, match=name):
        call_command('reap_stale_user_tasks')
    assert UserTaskStatus.objects.get(pk=running.pk).state == UserTaskStatus.IN_PROGRESS


def test_unset_settings_do_not_build_their_defaults(monkeypatch):
    """A host without DRF (``manage.py migrate`` in tests/upgrade) must pass: defaults are not imported."""
    from user_tasks import conf

    def explode():
        raise ImportError('No module named rest_framework')
    monkeypatch.setitem(conf.DEFAULTS, 'USER_TASKS_STATUS_FILTERS', explode)
    monkeypatch.setitem(conf.DEFAULTS, 'USER_TASKS_ARTIFACT_FILTERS', explode)
    assert checks.check_settings() == []


# -- in a new process: a wrong value read at import is still the check's to report ------------

_CHECK_IN_A_NEW_PROCESS = r'''
import django
from django.core.management import call_command
from django.core.management.base import SystemCheckError
django.setup()
try:
    call_command('check')
except SystemCheckError as exc:
    print('REPORTED', sorted(code for code in ('E002', 'E003', 'E004') if 'user_tasks.' + code in str(exc)))
'''

READ_AT_IMPORT = [
    ('USER_TASKS_STATUS_FILTERS', "('no.such.Backend',)", 'E002'),
    ('USER_TASKS_STATUS_FILTERS', '5', 'E002'),
    # A one-element tuple without its comma is a string: its characters are not import paths.
    ('USER_TASKS_ARTIFACT_FILTERS', "('user_tasks.filters.ArtifactFilterBackend')", 'E003'),
    ('USER_TASKS_ARTIFACT_STORAGE', "'no.such.Storage'", 'E004'),
    ('USER_TASKS_ARTIFACT_STORAGE', "'NoDots'", 'E004'),
    ('USER_TASKS_ARTIFACT_STORAGE', '5', 'E004'),
]


@pytest.mark.parametrize(('name', 'value', 'check_id'), READ_AT_IMPORT)
def test_a_wrong_value_read_at_import_is_reported_by_the_check_not_a_crash(tmp_path, name, value, check_id):
    """The viewsets' filters and the artifact field's storage are read as their modules load (URLconf, models)."""
    (tmp_path / 'wrong_settings.py').write_text(f'from tests.settings import *  # noqa: F403\n{name} = {value}\n')
    env = dict(os.environ, DJANGO_SETTINGS_MODULE='wrong_settings', PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    result = subprocess.run([sys.executable, '-c', _CHECK_IN_A_NEW_PROCESS], capture_output=True, text=True,
                            env=env, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"REPORTED ['{check_id}']" in result.stdout, (result.stdout, result.stderr[-2000:])


def test_the_artifact_storage_of_a_wrong_setting_refuses_every_use(settings):
    """Until the setting is fixed nothing is stored anywhere else; an explicit import path still raises at once."""
    from user_tasks.conf import get_storage  # noqa: PLC0415
    settings.USER_TASKS_ARTIFACT_STORAGE = 'no.such.Storage'
    storage = get_storage()
    for use in (lambda: storage.save('a.txt', None), lambda: storage.url('a.txt'), lambda: storage.exists('a')):
        with pytest.raises(ImproperlyConfigured, match="USER_TASKS_ARTIFACT_STORAGE = 'no.such.Storage'"):
            use()
    with pytest.raises(ImportError):
        get_storage('no.such.Storage')

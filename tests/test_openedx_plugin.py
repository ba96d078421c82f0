"""
The Open edX plugin: its declarations, its settings functions, and real hosts loading it.

The host tests run ``tests/openedx_host`` (a miniature LMS/Studio wired as edx-platform
wires plugins) in subprocesses, as cms and lms, each in two layouts: ``plugin`` (only the
entry point brings user_tasks in) and ``edx-platform`` (``'user_tasks'`` already installed,
Studio's own ``api/tasks/v0/`` include first, Celery reading old-style setting names).
Each run migrates a SQLite file, starts a real Celery worker on the filesystem broker,
runs a user task and reads it back through the REST API.
"""
import json
import os
import shutil
import subprocess
import sys
import types
from datetime import timedelta

import pytest
import rules
from celery.schedules import crontab
from django.utils.module_loading import import_string
from edx_django_utils.plugins import PluginSettings, PluginURLs
from edx_django_utils.plugins.constants import PLUGIN_APP_SETTINGS_FUNC_NAME

from tests.openedx_host import runner
from user_tasks.plugin import apps as plugin_apps
from user_tasks.plugin.apps import UserTasksPluginConfig
from user_tasks.plugin.settings import common, production

pytestmark = pytest.mark.timeout(120)

PROJECT_TYPES = ('lms.djangoapp', 'cms.djangoapp')
SETTINGS_TYPES = ('common', 'production', 'devstack', 'test')
PURGE = ('user_tasks.purge_old_user_tasks', 'user_tasks.tasks.purge_old_user_tasks')
REAPER = ('user_tasks.reap_stale_user_tasks', 'user_tasks.tasks.reap_stale_user_tasks')
RULES_BACKEND = 'rules.permissions.ObjectPermissionBackend'


def host_settings(**values):
    """A stand-in for the host's settings module (add_plugins passes the module object)."""
    return types.SimpleNamespace(**values)


# --- plugin_app declarations ------------------------------------------------------------

def test_app_config_identity():
    assert UserTasksPluginConfig.name == 'user_tasks.plugin'
    assert UserTasksPluginConfig.label == 'user_tasks_plugin'


@pytest.mark.parametrize('project_type', PROJECT_TYPES)
def test_url_config_mounts_api_unnamespaced(project_type):
    config = UserTasksPluginConfig.plugin_app[PluginURLs.CONFIG][project_type]
    # At the root: the module itself puts the API at api/tasks/v0/ and the pages at user_tasks/.
    assert config[PluginURLs.REGEX] == r'^'
    assert config[PluginURLs.NAMESPACE] == ''
    assert config[PluginURLs.RELATIVE_PATH] == 'urls'
    assert PluginURLs.CONFIG == 'url_config' and PluginURLs.NAMESPACE == 'namespace'


@pytest.mark.parametrize('project_type', PROJECT_TYPES)
@pytest.mark.parametrize('settings_type', SETTINGS_TYPES)
def test_settings_config_points_at_plugin_settings_functions(project_type, settings_type):
    config = UserTasksPluginConfig.plugin_app[PluginSettings.CONFIG][project_type][settings_type]
    module_path = f'{UserTasksPluginConfig.name}.{config[PluginSettings.RELATIVE_PATH]}'
    assert module_path == f'user_tasks.plugin.settings.{settings_type}'
    assert callable(import_string(f'{module_path}.{PLUGIN_APP_SETTINGS_FUNC_NAME}'))


def test_installed_package_has_both_entry_points():
    runner.require_entry_points()


# --- settings: common ---------------------------------------------------------------------

def test_common_on_an_empty_host():
    settings = host_settings(INSTALLED_APPS=['django.contrib.auth'])
    common.plugin_settings(settings)
    assert settings.INSTALLED_APPS == ['django.contrib.auth', 'user_tasks']
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=30)
    assert settings.AUTHENTICATION_BACKENDS == ['django.contrib.auth.backends.ModelBackend', RULES_BACKEND]
    for name in ('CELERYBEAT_SCHEDULE', 'CELERY_BEAT_SCHEDULE'):
        schedule = getattr(settings, name)
        assert {key: entry['task'] for key, entry in schedule.items()} == dict([PURGE, REAPER])
    assert isinstance(settings.CELERYBEAT_SCHEDULE[PURGE[0]]['schedule'], crontab)
    assert settings.CELERYBEAT_SCHEDULE[REAPER[0]]['schedule'] <= timedelta(minutes=5)


@pytest.mark.parametrize('entry', ['user_tasks', 'user_tasks.apps.UserTasksConfig'])
def test_common_keeps_an_existing_user_tasks_app(entry):
    apps = ['django.contrib.auth', entry, 'user_tasks.plugin.apps.UserTasksPluginConfig']
    settings = host_settings(INSTALLED_APPS=list(apps))
    common.plugin_settings(settings)
    assert settings.INSTALLED_APPS == apps


def test_common_adds_to_a_tuple_of_apps():
    settings = host_settings(INSTALLED_APPS=('django.contrib.auth',), AUTHENTICATION_BACKENDS=('a.Backend',))
    common.plugin_settings(settings)
    assert settings.INSTALLED_APPS == ('django.contrib.auth', 'user_tasks')
    assert settings.AUTHENTICATION_BACKENDS == ('a.Backend', RULES_BACKEND)


def test_common_never_clobbers_the_host():
    own_purge = {'task': PURGE[1], 'schedule': timedelta(hours=6)}
    settings = host_settings(
        INSTALLED_APPS=['user_tasks'],
        USER_TASKS_MAX_AGE=timedelta(days=7),
        AUTHENTICATION_BACKENDS=[RULES_BACKEND, 'django.contrib.auth.backends.ModelBackend'],
        CELERYBEAT_SCHEDULE={'nightly-purge': own_purge, 'other': {'task': 'x.y', 'schedule': 60}},
        CELERY_BEAT_SCHEDULE={REAPER[0]: {'task': REAPER[1], 'schedule': 30}},
    )
    common.plugin_settings(settings)
    common.plugin_settings(settings)  # idempotent
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=7)
    assert settings.AUTHENTICATION_BACKENDS == [RULES_BACKEND, 'django.contrib.auth.backends.ModelBackend']
    # The host schedules the purge itself under its own name: no second purge entry.
    assert settings.CELERYBEAT_SCHEDULE['nightly-purge'] is own_purge
    assert set(settings.CELERYBEAT_SCHEDULE) == {'nightly-purge', 'other', REAPER[0]}
    assert settings.CELERY_BEAT_SCHEDULE[REAPER[0]]['schedule'] == 30
    assert set(settings.CELERY_BEAT_SCHEDULE) == {PURGE[0], REAPER[0]}
    assert settings.INSTALLED_APPS == ['user_tasks']


# --- settings: production -----------------------------------------------------------------

def test_production_reads_env_tokens():
    settings = host_settings(USER_TASKS_MAX_AGE=timedelta(days=30), ENV_TOKENS={
        'USER_TASKS_MAX_AGE': 3 * 86400, 'USER_TASKS_PURGE_BATCH_SIZE': 50, 'UNRELATED': 1,
        'USER_TASKS_MAX_AGE_BY_STATE': {'Failed': 90 * 86400},
    })
    production.plugin_settings(settings)
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=3)
    assert settings.USER_TASKS_PURGE_BATCH_SIZE == 50
    assert settings.USER_TASKS_MAX_AGE_BY_STATE == {'Failed': timedelta(days=90)}
    assert not hasattr(settings, 'UNRELATED')


def test_production_without_tokens_leaves_host_values():
    settings = host_settings(USER_TASKS_MAX_AGE=timedelta(days=7), USER_TASKS_STALE_AFTER=600,
                             USER_TASKS_PUBLISH_ON_COMMIT=False)
    production.plugin_settings(settings)
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=7)
    # YAML keys land in the module as plain numbers: durations are read as seconds.
    assert settings.USER_TASKS_STALE_AFTER == timedelta(minutes=10)
    assert settings.USER_TASKS_PUBLISH_ON_COMMIT is False


# --- rules registration -------------------------------------------------------------------

@pytest.fixture
def empty_rules():
    """An empty ``rules`` permission registry, restored afterwards."""
    registry = rules.permissions.permissions
    saved = dict(registry)
    registry.clear()
    yield registry
    registry.clear()
    registry.update(saved)


def test_ready_registers_owner_rules(empty_rules):
    assert plugin_apps.register_rules() is True
    for name in ('view', 'cancel', 'delete'):
        assert rules.perm_exists(f'user_tasks.{name}_usertaskstatus')
    assert rules.perm_exists('user_tasks.view_usertaskartifact')
    assert plugin_apps.register_rules() is False  # already there: left alone


def test_ready_keeps_the_hosts_own_rules(empty_rules):
    rules.add_perm('user_tasks.view_usertaskstatus', rules.is_staff)
    assert plugin_apps.register_rules() is False
    assert empty_rules['user_tasks.view_usertaskstatus'] is rules.is_staff
    assert not rules.perm_exists('user_tasks.cancel_usertaskstatus')


# --- real hosts ---------------------------------------------------------------------------

HOSTS = [('cms', 'plugin'), ('lms', 'plugin'), ('cms', 'edx-platform'), ('lms', 'edx-platform')]


@pytest.fixture(scope='module', params=HOSTS, ids=[f'{project}-{layout}' for project, layout in HOSTS])
def host(request, tmp_path_factory):
    """Migrate the host, run a task on a real worker, return the scenario's report."""
    runner.require_entry_points()
    project, layout = request.param
    work_dir = tmp_path_factory.mktemp(f'{project}-{layout}')
    env = runner.host_env(work_dir, project, layout)
    migrate = runner.run(['-m', 'django', 'migrate', '--no-input', '-v', '0'], env)
    log_path = work_dir / 'worker.log'
    with runner.celery_worker(env, log_path):
        scenario = runner.run(['-m', 'tests.openedx_host.scenario'], env, timeout=90)
    return types.SimpleNamespace(project=project, layout=layout, migrate=migrate, scenario=scenario,
                                 report=runner.parse_report(scenario), worker_log=runner.read_log(log_path))


def test_host_migrates(host):
    assert host.migrate.returncode == 0, host.migrate.stderr


def test_host_installs_user_tasks_once(host):
    apps = host.report['installed_apps']
    assert apps.count('user_tasks') == 1
    assert apps.count('user_tasks.plugin.apps.UserTasksPluginConfig') == 1
    assert {'user_tasks', 'user_tasks_plugin'} <= set(host.report['app_labels'])


def test_host_worker_runs_the_task(host):
    task = host.report['task']
    assert task is not None, f'no final row in time; worker log:\n{host.worker_log}\n{host.scenario.stderr}'
    assert task['state'] == 'Succeeded', host.worker_log
    assert (task['completed_steps'], task['total_steps']) == (2, 2)
    assert task['name'] == 'Host task for plugin check'
    assert task['task_class'] == 'tests.openedx_host.tasks.host_task'
    assert task['artifacts'] == ['Output']


def test_host_publishes_protocol_1_as_edx_platform(host):
    """Issue 11 item 3: the host's app sends protocol 1, and the worker tracked that message."""
    assert host.report['task_protocol'] == 1
    assert host.report['published_protocols'] == [1]
    assert host.report['task']['state'] == 'Succeeded'


def test_host_api_serves_the_task_to_its_owner(host):
    api = host.report['api']
    assert api['list_status'] == 200
    assert api['list_names'] == ['Host task for plugin check']
    assert api['list_states'] == ['Succeeded']
    assert api['detail_status'] == 200
    assert api['detail']['name'] == 'Host task for plugin check'
    assert api['anonymous_status'] == 401  # the host's first class (JWT) challenges
    assert api['other_list_names'] == []
    assert api['other_detail_status'] == 404


def test_host_rest_api_through_edx_platform_middleware(host):
    """Issue 11 item 0: every route through edx-drf-extensions' middleware, JWT auth first."""
    assert host.report['rest_walk'] == {
        'anonymous list': [401, None],  # JwtAuthentication, first, sends a challenge (docs/rest_api.rst)
        'list': [200, 1],
        'detail': [200, 'Succeeded'],
        'artifact list': [200, 1],
        'artifact detail': [200, 'Output'],
        'cancel finished': [200, 'Succeeded'],
        'cancel waiting': [200, 'Canceled'],
        'delete': [204, False],
        'detail after delete': [404, None],
    }, host.scenario.stderr[-3000:]


def test_host_reverses_unnamespaced(host):
    task = host.report['task']
    assert host.report['reverse_detail'] == f"/api/tasks/v0/tasks/{task['uuid']}/"
    assert host.report['reverse_list'] == '/api/tasks/v0/tasks/'
    # Studio's own include answers first where it exists; elsewhere the plugin's does.
    expected = 'user_tasks.urls' if (host.project, host.layout) == ('cms', 'edx-platform') else 'user_tasks.plugin.urls'
    assert host.report['first_route']['urlconf'] == expected


def test_host_serves_pages_and_metrics(host):
    pages = host.report['pages']
    task = host.report['task']
    assert pages['detail_url'] == f"/user_tasks/{task['uuid']}/"
    assert pages['list_url'] == '/user_tasks/'
    assert pages['metrics_url'] == '/user_tasks/metrics'
    assert pages['owner_detail'] == 200
    assert pages['owner_list'] == 200
    assert pages['other_detail'] in (403, 404)
    assert pages['anonymous_metrics'] == 401


def test_host_beat_schedule_has_both_jobs(host):
    schedule = host.report['beat_schedule']
    assert schedule[PURGE[0]] == PURGE[1]
    assert schedule[REAPER[0]] == REAPER[1]
    if host.layout == 'edx-platform':
        assert schedule['host.cleanup'] == 'host.cleanup'  # the host's own entry survives
    for name in ('CELERYBEAT_SCHEDULE', 'CELERY_BEAT_SCHEDULE'):
        assert {PURGE[0], REAPER[0]} <= set(host.report['settings_schedules'][name])
    # The worker knows the task names beat would send.
    assert {PURGE[1], REAPER[1]} <= set(host.report['registered_tasks'])


def test_host_rules_give_the_owner_access(host):
    assert RULES_BACKEND in host.report['auth_backends']
    assert host.report['has_perm'] == {'owner_view': True, 'owner_cancel': True, 'other_view': False}


def test_host_max_age_default_and_override(host):
    days = 7 if (host.project, host.layout) == ('cms', 'edx-platform') else 30
    assert host.report['max_age_seconds'] == timedelta(days=days).total_seconds()


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
print('REPORT ' + json.dumps({
    'max_age': settings.USER_TASKS_MAX_AGE.total_seconds(),
    'stale_after': settings.USER_TASKS_STALE_AFTER.total_seconds(),
    'beat': sorted(settings.CELERYBEAT_SCHEDULE),
}))
"""


def test_production_settings_take_operator_overrides(tmp_path):
    runner.require_entry_points()
    env = runner.host_env(tmp_path, 'cms', 'edx-platform', settings='production',
                          OPENEDX_HOST_ENV_TOKENS=json.dumps({'USER_TASKS_MAX_AGE': 2 * 86400}),
                          OPENEDX_HOST_YAML_TOKENS=json.dumps({'USER_TASKS_STALE_AFTER': 120}))
    report = runner.parse_report(runner.run_ok(['-c', PRODUCTION_PROBE], env))
    assert report['max_age'] == 2 * 86400
    assert report['stale_after'] == 120
    assert {PURGE[0], REAPER[0], 'host.cleanup'} <= set(report['beat'])


# --- a built wheel in a fresh virtualenv ---------------------------------------------------

ENTRY_POINT_PROBE = """
import importlib.util, json
from importlib.metadata import entry_points
print('REPORT ' + json.dumps({
    group: [[ep.name, ep.value] for ep in entry_points(group=group)]
    for group in ('lms.djangoapp', 'cms.djangoapp')
} | {'django_visible': importlib.util.find_spec('django') is not None}))
"""


def test_wheel_in_a_fresh_virtualenv_exposes_both_entry_points(tmp_path):
    source = tmp_path / 'src'
    source.mkdir()
    for name in ('setup.py', 'README.rst', 'MANIFEST.in', 'LICENSE', 'CHANGELOG.rst'):
        shutil.copy(os.path.join(runner.REPO_ROOT, name), source / name)
    shutil.copytree(os.path.join(runner.REPO_ROOT, 'user_tasks'), source / 'user_tasks',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    dist = tmp_path / 'dist'
    build = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(dist), str(source)],
                           capture_output=True, text=True, timeout=180, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob('django_user_tasks-*.whl')

    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=120, capture_output=True)
    python = str(venv / 'bin' / 'python')
    install = subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', str(wheel)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    probe = subprocess.run([python, '-c', ENTRY_POINT_PROBE], capture_output=True, text=True, timeout=60,
                           check=False, cwd=tmp_path)
    report = runner.parse_report(probe)
    assert report['django_visible'] is False  # a plain virtualenv: only the wheel is there
    for group in ('lms.djangoapp', 'cms.djangoapp'):
        assert report[group] == [['user_tasks', runner.PLUGIN_ENTRY_POINT]]

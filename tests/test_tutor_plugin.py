"""
The Tutor plugin ``tutor-contrib-user-tasks`` (top-level ``tutor/``), rendered by the real Tutor.

Each render runs the ``tutor`` CLI from PyPI (22.x, installed with the plugin by ``make
venv``) on a temporary ``TUTOR_ROOT``: ``tutor plugins enable user-tasks`` then ``tutor
config save``.  No Docker is needed: the tests parse what Tutor wrote (compose files,
Kubernetes manifests, the Dockerfile, Prometheus and Grafana files), compile the rendered
Python settings, check the scrape configs and rules with ``promtool``, load the rendered
``USER_TASKS_*`` settings into the miniature Open edX host (tests/openedx_host), and run
the rendered beat schedule there with a real ``celery beat`` and worker.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

import user_tasks
from tests.openedx_host import runner
from tests.promtool import promtool

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent
LIBRARY_RULES = REPO / 'user_tasks' / 'metrics' / 'alerts' / 'user_tasks.rules.yml'
LIBRARY_DASHBOARD = REPO / 'user_tasks' / 'metrics' / 'grafana' / 'user_tasks.json'
SHIPPED = REPO / 'tutor' / 'tutor_user_tasks' / 'monitoring'
DOCS_URL = 'https://django-user-tasks.readthedocs.io/en/latest/observability.html'
MULTIPROC_DIR = '/tmp/user-tasks-metrics'
OPENEDX_SERVICES = ('lms', 'cms', 'lms-worker', 'cms-worker')
WORKERS = ('lms-worker', 'cms-worker')

#: The config of each render: ``local`` keeps the plugin's defaults where the tests check
#: them; ``k8s`` changes what an operator of a cluster would.
LOCAL = {'USER_TASKS_MAX_AGE_DAYS': 3, 'USER_TASKS_REAPER_INTERVAL_SECONDS': 1, 'USER_TASKS_PURGE_HOUR': 4,
         'USER_TASKS_PURGE_MINUTE': 5}
GIT_REQUIREMENT = 'git+https://git.example.com/you/django-user-tasks@main'
K8S = {'K8S_NAMESPACE': 'ut-render', 'USER_TASKS_GRAFANA_URL': 'https://grafana.example.com/',
       'USER_TASKS_PIP_REQUIREMENT': GIT_REQUIREMENT, 'USER_TASKS_METRICS_PORT': 9500,
       'USER_TASKS_RUNBOOK_URL': 'https://docs.example.com/user-tasks/observability.html'}


def tutor_binary():
    path = shutil.which('tutor', path=os.path.dirname(sys.executable))
    if path is None:
        pytest.fail('tutor is not installed in this environment: `make venv` installs it with the plugin '
                    '(pip install -e ./tutor)')
    return path


def tutor(root, *args):
    env = dict(os.environ, TUTOR_ROOT=str(root), TUTOR_PLUGINS_ROOT=str(root / 'plugins'))
    done = subprocess.run([tutor_binary(), *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f'tutor {args}: {done.returncode}\n{done.stdout}\n{done.stderr}'
    return done.stdout


def render(root, config):
    tutor(root, 'plugins', 'enable', 'user-tasks')
    settings = [item for key, value in config.items() for item in ('--set', f'{key}={value}')]
    tutor(root, 'config', 'save', *settings)
    return root / 'env'


@pytest.fixture(scope='module')
def local(tmp_path_factory):
    return render(tmp_path_factory.mktemp('tutor-local'), LOCAL)


@pytest.fixture(scope='module')
def k8s(tmp_path_factory):
    return render(tmp_path_factory.mktemp('tutor-k8s'), K8S)


def config_of(env):
    return yaml.safe_load((env.parent / 'config.yml').read_text())


def load(path):
    return yaml.safe_load(path.read_text())


def load_all(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def blocks(text):
    """The tutor-contrib-user-tasks blocks of a rendered settings file."""
    found = re.findall(r'^# BEGIN user-tasks.*?^# END user-tasks$', text, re.S | re.M)
    assert found, text[:2000]
    return found


# -- the plugin as a distribution ----------------------------------------------------------

def test_plugin_is_installed_with_the_librarys_version(tmp_path):
    listing = tutor(tmp_path, 'plugins', 'list')
    assert re.search(rf'^user-tasks\s+\w+\s+{re.escape(user_tasks.__version__)}\s*$', listing, re.M), listing
    from tutor_user_tasks.__about__ import __version__  # pylint: disable=import-outside-toplevel
    assert __version__ == user_tasks.__version__


def test_shipped_rules_and_dashboard_are_the_librarys():
    """The plugin's package data are copies of the library's files (cp them after a change)."""
    assert (SHIPPED / 'user_tasks.rules.yml').read_bytes() == LIBRARY_RULES.read_bytes()
    assert (SHIPPED / 'user_tasks.json').read_bytes() == LIBRARY_DASHBOARD.read_bytes()


def test_rendered_files(local):
    files = sorted(str(path.relative_to(local)) for path in local.rglob('*')
                   if path.is_file() and ('user-tasks' in path.parts))
    print('\n'.join(files))
    assert files == [
        'build/openedx/user-tasks/wheels/README.txt',
        'plugins/user-tasks/apps/grafana/user_tasks.json',
        'plugins/user-tasks/apps/prometheus/scrape-k8s.yml',
        'plugins/user-tasks/apps/prometheus/scrape-local.yml',
        'plugins/user-tasks/apps/prometheus/user_tasks.rules.yml',
    ]


# -- the image -----------------------------------------------------------------------------

def test_image_installs_the_plugins_version_by_default(local):
    dockerfile = (local / 'build' / 'openedx' / 'Dockerfile').read_text()
    line = f"$PIP_COMMAND install 'django-user-tasks=={user_tasks.__version__}'"
    assert line in dockerfile
    # After edx-platform's requirements (which pin an older django-user-tasks), so it replaces them.
    assert dockerfile.index('requirements/edx/base.txt') < dockerfile.index(line)


def test_image_installs_a_git_url(k8s):
    assert f"$PIP_COMMAND install '{GIT_REQUIREMENT}'" in (k8s / 'build' / 'openedx' / 'Dockerfile').read_text()


def test_image_installs_a_wheel_from_the_build_context():
    from tutor_user_tasks.plugin import pip_install  # pylint: disable=import-outside-toplevel
    wheel = 'django_user_tasks-5.0.0-py3-none-any.whl'
    run = pip_install(wheel, '5.0.0')
    assert 'type=bind,source=user-tasks/wheels,target=/tmp/user-tasks-wheels' in run
    assert run.endswith(f'$PIP_COMMAND install /tmp/user-tasks-wheels/{wheel}')
    with pytest.raises(ValueError):
        pip_install("django-user-tasks'; rm -rf /", '5.0.0')
    with pytest.raises(ValueError):
        pip_install('bad name$.whl', '5.0.0')


# -- settings ------------------------------------------------------------------------------

def test_rendered_python_settings_compile(local, k8s):
    compiled = 0
    for env in (local, k8s):
        for path in (env / 'apps' / 'openedx' / 'settings').rglob('*.py'):
            compile(path.read_text(), str(path), 'exec')
            compiled += 1
    assert compiled >= 8
    for service in ('lms', 'cms'):
        production = (local / 'apps' / 'openedx' / 'settings' / service / 'production.py').read_text()
        assert len(blocks(production)) == 2  # the common USER_TASKS_* block and the allowed host
        development = (local / 'apps' / 'openedx' / 'settings' / service / 'development.py').read_text()
        assert len(blocks(development)) == 1


PROBE = """
import json, socket, django
django.setup()
from django.conf import settings as django_settings
from user_tasks.conf import settings
from tests.openedx_host.celery import app
def schedule(entry):
    value = entry['schedule']
    if hasattr(value, 'run_every'):
        return {'seconds': value.run_every.total_seconds()}
    if hasattr(value, 'hour'):
        return {'hour': sorted(value.hour), 'minute': sorted(value.minute)}
    return {'seconds': getattr(value, 'total_seconds', lambda: float(value))()}
print('REPORT ' + json.dumps({
    'max_age': settings.USER_TASKS_MAX_AGE.total_seconds(),
    'stale_after': settings.USER_TASKS_STALE_AFTER.total_seconds(),
    'pending_timeout': settings.USER_TASKS_PENDING_TIMEOUT.total_seconds(),
    'metrics': [settings.USER_TASKS_METRICS_PORT, settings.USER_TASKS_METRICS_ADDRESS,
                settings.USER_TASKS_METRICS_TOKEN],
    'beat': {name: [entry['task'], schedule(entry)] for name, entry in app.conf.beat_schedule.items()},
    'own_address_allowed': socket.gethostbyname(socket.gethostname()) in django_settings.ALLOWED_HOSTS,
}))
"""


def _host_env(work_dir, env, project='cms'):
    """The miniature Open edX host (edx-platform layout) with the render's user-tasks blocks applied."""
    runner.require_entry_points()
    production = (env / 'apps' / 'openedx' / 'settings' / project / 'production.py').read_text()
    rendered = work_dir / 'tutor_user_tasks_settings.py'
    rendered.write_text('\n'.join(blocks(production)) + '\n')
    return runner.host_env(work_dir, project, 'edx-platform', settings='tutor',
                           OPENEDX_HOST_TUTOR_SETTINGS=str(rendered))


@pytest.mark.parametrize('project', ['cms', 'lms'])
def test_rendered_settings_load_into_the_host(local, tmp_path, project):
    env = _host_env(tmp_path, local, project)
    report = runner.parse_report(runner.run_ok(['-c', PROBE], env))
    checked = runner.run_ok(['-m', 'django', 'check', '--fail-level', 'WARNING'], env)  # the settings checks pass
    assert 'no issues' in checked.stdout, checked.stdout + checked.stderr
    assert report['max_age'] == timedelta(days=3).total_seconds()
    assert report['stale_after'] == 600 and report['pending_timeout'] == 86400
    assert report['metrics'] == [9101, '0.0.0.0', config_of(local)['USER_TASKS_METRICS_TOKEN']]
    assert len(report['metrics'][2]) == 32
    assert report['beat']['user_tasks.reap_stale_user_tasks'] == [
        'user_tasks.tasks.reap_stale_user_tasks', {'seconds': 1.0}]
    assert report['beat']['user_tasks.purge_old_user_tasks'] == [
        'user_tasks.tasks.purge_old_user_tasks', {'hour': [4], 'minute': [5]}]
    assert 'host.cleanup' in report['beat']  # the host's own entries stay
    assert report['own_address_allowed'] is True


def test_the_rendered_beat_schedule_runs_the_reaper_in_the_host(local, tmp_path):
    """A real ``celery beat`` with the rendered schedule sends the reaper to a real worker, which records its run."""
    env = _host_env(tmp_path, local)
    runner.run_ok(['-m', 'django', 'migrate', '--no-input', '-v', '0'], env)
    beat_log = tmp_path / 'beat.log'
    beat_command = [sys.executable, '-m', 'celery', '-A', 'tests.openedx_host.celery', 'beat', '--loglevel=info',
                    f'--schedule={tmp_path / "celerybeat-schedule"}', '--pidfile=']
    with runner.celery_worker(env, tmp_path / 'worker.log'), open(beat_log, 'w', encoding='utf-8') as log:
        beat = subprocess.Popen(beat_command, cwd=runner.REPO_ROOT, env=env, stdout=log,  # pylint: disable=consider-using-with
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            runs = _wait_for_reaper_runs(tmp_path / 'db.sqlite3', count=2, timeout=60)
        finally:
            beat.terminate()
            beat.wait(timeout=20)
    assert len(runs) == 2, (runs, runner.read_log(beat_log), runner.read_log(tmp_path / 'worker.log'))


def _wait_for_reaper_runs(database, count, timeout):
    """The distinct reaper run times recorded in the host's database, once ``count`` are seen (bounded)."""
    seen = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < count:
        try:
            with sqlite3.connect(database, timeout=5) as connection:
                row = connection.execute(
                    "SELECT last_run FROM user_tasks_periodicjobrun WHERE job = 'reaper'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row:
            seen.add(row[0])
        time.sleep(0.2)
    return sorted(seen)


# -- tutor local (docker compose) -----------------------------------------------------------

def _merge(base, extra):
    """Compose's merge of one service definition into another (mappings by key, sequences appended)."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = result[key] + value
        else:
            result[key] = value
    return result


def compose_services(*paths):
    services = {}
    for path in paths:
        for name, service in (load(path).get('services') or {}).items():
            services[name] = _merge(services.get(name, {}), service or {})
    return services


def test_local_compose_services(local):
    compose = local / 'local'
    services = compose_services(compose / 'docker-compose.yml', compose / 'docker-compose.prod.yml',
                                compose / 'docker-compose.jobs.yml')
    without_image = [name for name, service in services.items() if 'image' not in service and 'build' not in service]
    assert not without_image
    for name in (*OPENEDX_SERVICES, 'cms-beat'):
        service = services[name]
        assert service['environment']['PROMETHEUS_MULTIPROC_DIR'] == MULTIPROC_DIR, name
        assert MULTIPROC_DIR in service['tmpfs'], name   # empty at every container start
    for name in WORKERS:
        assert services[name]['expose'] == ['9101']
        assert services[name]['command'][:2] == ['celery', f'--app={name[:3]}.celery']  # Tutor's own command kept
    beat = services['cms-beat']
    assert beat['image'] == services['cms-worker']['image']
    assert beat['command'][:4] == ['celery', '--app=cms.celery', 'beat', '--loglevel=info']
    assert beat['environment']['DJANGO_SETTINGS_MODULE'] == 'cms.envs.tutor.production'
    assert set(beat['volumes']) <= set(services['cms-worker']['volumes'])   # the same settings and config
    assert not [name for name, service in services.items() if name == 'cms-beat' and service.get('ports')]


def test_dev_compose_stays_valid(local):
    """``tutor dev`` has no workers: the stand-ins keep its merged files valid and never start."""
    compose = local
    dev = compose_services(compose / 'local' / 'docker-compose.yml', compose / 'dev' / 'docker-compose.yml')
    assert not [name for name, service in dev.items() if 'image' not in service and 'build' not in service]
    for name in WORKERS:
        assert dev[name]['profiles'] == ['user-tasks-local-only']
    # Without them the worker settings of docker-compose.yml would be services without an image.
    bare = compose_services(compose / 'local' / 'docker-compose.yml')
    assert 'image' not in bare['cms-worker']


# -- tutor k8s -------------------------------------------------------------------------------

def _strategic_merge(base, patch):
    """Kubernetes' strategic merge for what the plugin patches (lists of named items merge by name)."""
    for key, value in patch.items():
        if isinstance(value, dict):
            base[key] = _strategic_merge(base.get(key) or {}, value)
        elif (isinstance(value, list) and isinstance(base.get(key), list)
              and all(isinstance(item, dict) and 'name' in item for item in value + base[key])):
            named = {item['name']: item for item in base[key]}
            for item in value:
                if item['name'] in named:
                    _strategic_merge(named[item['name']], item)
                else:
                    base[key].append(item)
        else:
            base[key] = value
    return base


def test_k8s_manifests(k8s):
    kustomization = load(k8s / 'kustomization.yml')
    assert {'path': 'k8s/override.yml'} in kustomization['patches']
    deployments = {doc['metadata']['name']: doc for doc in load_all(k8s / 'k8s' / 'deployments.yml')
                   if doc['kind'] == 'Deployment'}
    for patch in load_all(k8s / 'k8s' / 'override.yml'):
        _strategic_merge(deployments[patch['metadata']['name']], patch)
    for name in (*OPENEDX_SERVICES, 'cms-beat'):
        pod = deployments[name]['spec']['template']['spec']
        (container,) = [c for c in pod['containers'] if c['name'] == name]
        env = {item['name']: item.get('value') for item in container['env']}
        assert env['PROMETHEUS_MULTIPROC_DIR'] == MULTIPROC_DIR, name
        mounts = {mount['name']: mount['mountPath'] for mount in container['volumeMounts']}
        assert mounts['user-tasks-metrics'] == MULTIPROC_DIR, name
        volumes = {volume['name']: volume for volume in pod['volumes']}
        assert volumes['user-tasks-metrics']['emptyDir']['medium'] == 'Memory', name   # empty at every pod start
        assert {'settings-lms', 'settings-cms', 'config'} <= set(volumes), name      # Tutor's own volumes kept
    for name in WORKERS:
        (container,) = deployments[name]['spec']['template']['spec']['containers']
        assert {'name': 'ut-metrics', 'containerPort': 9500} in container['ports']
        assert container['args'][:2] == ['celery', f'--app={name[:3]}.celery']
    beat = deployments['cms-beat']['spec']
    assert beat['replicas'] == 1 and beat['strategy'] == {'type': 'Recreate'}   # exactly one beat
    assert beat['template']['spec']['containers'][0]['args'][2] == 'beat'
    services = {doc['metadata']['name']: doc['spec'] for doc in load_all(k8s / 'k8s' / 'services.yml')}
    for name in WORKERS:
        spec = services[f'{name}-user-tasks-metrics']
        assert spec['clusterIP'] == 'None' and spec['ports'][0]['port'] == 9500
        assert spec['selector'] == deployments[name]['spec']['selector']['matchLabels']


# -- Prometheus and Grafana files ------------------------------------------------------------

@pytest.mark.parametrize('kind', ['local', 'k8s'])
def test_scrape_configs_and_rules_pass_promtool(local, k8s, kind, tmp_path):
    env = {'local': local, 'k8s': k8s}[kind]
    folder = env / 'plugins' / 'user-tasks' / 'apps' / 'prometheus'
    scrape = load(folder / f'scrape-{kind}.yml')
    token = config_of(env)['USER_TASKS_METRICS_TOKEN']
    jobs = {job['job_name']: job for job in scrape['scrape_configs']}
    assert set(jobs) == {'user-tasks-web', 'user-tasks-worker'}
    assert all(job['authorization'] == {'type': 'Bearer', 'credentials': token} for job in jobs.values())
    assert jobs['user-tasks-web']['metrics_path'] == '/user_tasks/metrics'
    if kind == 'local':   # each container by its address in the compose network
        assert jobs['user-tasks-web']['dns_sd_configs'] == [{'names': ['lms', 'cms'], 'type': 'A', 'port': 8000}]
        assert jobs['user-tasks-worker']['dns_sd_configs'][0]['port'] == 9101
    else:                 # each pod, in the site's namespace
        for job in jobs.values():
            assert job['kubernetes_sd_configs'] == [{'role': 'pod', 'namespaces': {'names': ['ut-render']}}]
        keep = jobs['user-tasks-worker']['relabel_configs'][0]
        assert keep['action'] == 'keep' and keep['regex'] == '(lms-worker|cms-worker);ut-metrics'
    if kind == 'k8s':
        # Debian's prometheus is built without Kubernetes discovery: promtool checks the rest of
        # each job (authorization, relabelling, path) with a static target in its place.
        for job in scrape['scrape_configs']:
            del job['kubernetes_sd_configs']
            job['static_configs'] = [{'targets': ['pod.invalid:8000']}]
    config = tmp_path / 'prometheus.yml'
    shutil.copy(folder / 'user_tasks.rules.yml', tmp_path / 'user_tasks.rules.yml')
    config.write_text(yaml.safe_dump({'rule_files': ['user_tasks.rules.yml'], **scrape}))
    check = subprocess.run([promtool(), 'check', 'config', str(config)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rendered_rules_and_dashboard(local, k8s):
    library_rules = LIBRARY_RULES.read_text()
    rendered = (local / 'plugins' / 'user-tasks' / 'apps' / 'prometheus' / 'user_tasks.rules.yml').read_text()
    assert rendered.strip() == library_rules.strip()   # defaults: the library's links
    custom = (k8s / 'plugins' / 'user-tasks' / 'apps' / 'prometheus' / 'user_tasks.rules.yml').read_text()
    rules = [rule for group in yaml.safe_load(custom)['groups'] for rule in group['rules']]
    assert len(rules) == 12
    for rule in rules:
        annotations = rule['annotations']
        assert annotations['runbook_url'] == ('https://docs.example.com/user-tasks/observability.html'
                                              f"#alert-{rule['alert'].lower()}")
        assert annotations['dashboard_url'] == 'https://grafana.example.com/d/user-tasks/user-tasks'
    # Nothing else changed: Prometheus' own {{ $value }} templating survived Tutor's Jinja.
    assert custom.strip() == library_rules.replace(
        f'{DOCS_URL}#', 'https://docs.example.com/user-tasks/observability.html#').replace(
        'dashboard_url: "/d/', 'dashboard_url: "https://grafana.example.com/d/').strip()
    dashboard = json.loads((k8s / 'plugins' / 'user-tasks' / 'apps' / 'grafana' / 'user_tasks.json').read_text())
    assert dashboard == json.loads(LIBRARY_DASHBOARD.read_text())


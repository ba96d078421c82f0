"""
Upstream django-user-tasks 4.0 as a black box, for same-run comparisons (``bench/throughput.py``).

Its release is installed from PyPI into a throw-away virtualenv of its own, as the upgrade
suite does (``tests/upgrade``), cached under ``.upgrade-venvs/bench-upstream-<version>``
(git-ignored) and rebuilt when its stamp differs.  The project around it is
``bench/upstream_project`` (settings from the environment, a no-op ``UserTask``); its
worker and its driver run with that virtualenv's Python, so nothing of upstream is ever
imported here.  Set ``USER_TASKS_BENCH_UPSTREAM_PYTHON`` to use a ready interpreter instead.
"""
import json
import os
import subprocess
import sys
from urllib.parse import urlparse

from . import REPO, service_url

VERSION = '4.0.0'
REQUIREMENTS = [f'django-user-tasks=={VERSION}', 'Django>=5.2,<5.3', 'celery>=5.3,<6', 'redis', 'psycopg2-binary']
BENCH_DIR = os.path.join(REPO, 'bench')
VENV = os.path.join(os.environ.get('USER_TASKS_UPGRADE_VENVS', os.path.join(REPO, '.upgrade-venvs')),
                    f'bench-upstream-{VERSION}')
PROBE = f'import importlib.metadata as m; assert m.version("django-user-tasks") == {VERSION!r}; import psycopg2, redis'


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in ('DJANGO_SETTINGS_MODULE', 'PYTHONPATH', 'VIRTUAL_ENV')}


def python():
    """The Python of a virtualenv holding upstream's release (built on first use, then cached)."""
    if os.environ.get('USER_TASKS_BENCH_UPSTREAM_PYTHON'):
        return os.environ['USER_TASKS_BENCH_UPSTREAM_PYTHON']
    executable = os.path.join(VENV, 'bin', 'python')
    stamp = os.path.join(VENV, '.ut-stamp')
    if os.path.exists(stamp):
        with open(stamp) as stream:
            if json.loads(stream.read()) == REQUIREMENTS:
                return executable
    subprocess.run([sys.executable, '-m', 'venv', '--clear', VENV], check=True, timeout=300)
    subprocess.run([executable, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', *REQUIREMENTS],
                   check=True, timeout=900, env=_clean_env())
    # Outside the repo, or the source tree would answer for the venv.
    subprocess.run([executable, '-c', PROBE], check=True, timeout=120, cwd=VENV, env=_clean_env())
    with open(stamp, 'w') as out:
        out.write(json.dumps(REQUIREMENTS))
    return executable


def environment(database, queue, broker, results, extra=None):
    """The environment of upstream's worker and driver: its own database and queue, the same Redis."""
    url = urlparse(service_url('postgres'))
    env = _clean_env()
    env.update({
        'DJANGO_SETTINGS_MODULE': 'upstream_project.settings',
        'PYTHONPATH': BENCH_DIR,
        'UPSTREAM_BENCH_DB_NAME': database,
        'UPSTREAM_BENCH_DB_HOST': url.hostname,
        'UPSTREAM_BENCH_DB_PORT': str(url.port or ''),
        'UPSTREAM_BENCH_DB_USER': url.username or '',
        'UPSTREAM_BENCH_DB_PASSWORD': url.password or '',
        'UPSTREAM_BENCH_BROKER': broker,
        'UPSTREAM_BENCH_RESULTS': results,
        'UPSTREAM_BENCH_QUEUE': queue,
    })
    env.update(extra or {})
    return env


def drive(executable, env, *args, timeout=900):
    """Run ``upstream_project.run`` with upstream's Python; return its JSON line."""
    proc = subprocess.run([executable, '-m', 'upstream_project.run', *args], cwd=BENCH_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f'bench: upstream driver failed ({" ".join(args)}):\n{proc.stdout}\n{proc.stderr}')
    return json.loads(proc.stdout.strip().splitlines()[-1])

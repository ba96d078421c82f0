"""
Fixtures for the upgrade suite: throw-away virtualenvs holding upstream's releases,
database administration on the PostgreSQL / MariaDB services, and schema snapshots.

Upstream is used strictly as a black box: it is installed from PyPI into its own
virtualenv, its ``migrate`` builds a database and a script writes rows through its
models.  Nothing in this process imports it.

Virtualenvs are cached under ``.upgrade-venvs/<name>`` (git-ignored) and reused while
their stamp matches the requirements and they still import; delete the directory to
force a rebuild.
"""
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / 'scripts'
VENV_CACHE = Path(os.environ.get('USER_TASKS_UPGRADE_VENVS', REPO / '.upgrade-venvs'))
OUR_PYTHON = Path(sys.executable)

PIP_TIMEOUT = 900
COMMAND_TIMEOUT = 300
DRIVERS = ['psycopg2-binary', 'PyMySQL']

# Upstream release -> the Django line it is run with.  3.4.4 predates Django 5; 4.0.0
# runs on 5.2, where MariaDB gets the native uuid type and its 0005 really converts.
UPSTREAM = {
    '3.4.4': 'Django>=4.2,<4.3',
    '4.0.0': 'Django>=5.2,<5.3',
}
# Our code is run with the project venv (its Django, 5.2) for the upgrade itself; to
# compare schemas, our 0001-0005 also run under the Django line upstream was run with
# (a second cached venv when that is not the project venv's).

SERVICE_DEFAULTS = {
    'postgres': 'postgres://postgres@127.0.0.1:5432/user_tasks',
    'mariadb': 'mysql://root@127.0.0.1:3306/user_tasks',
}
SERVICE_ENV = {'postgres': 'USER_TASKS_TEST_POSTGRES', 'mariadb': 'USER_TASKS_TEST_MARIADB'}
SERVICE_LABEL = {'postgres': 'PostgreSQL', 'mariadb': 'MariaDB'}


def in_ci():
    return os.environ.get('CI', '').strip().lower() == 'true'


def skip_or_fail(reason):
    """Skip locally; under CI=true a missing service or index is an error."""
    if in_ci():
        pytest.fail(f'{reason} (CI=true: not skipping)', pytrace=False)
    pytest.skip(reason)


def run(cmd, *, timeout=COMMAND_TIMEOUT, env=None, cwd=None, check=True):
    """Run a command with a hard timeout; on failure show its output in the test report."""
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f'timed out after {timeout}s: {" ".join(map(str, cmd))}\n{exc.stdout or ""}\n{exc.stderr or ""}',
                    pytrace=False)
    if check and proc.returncode != 0:
        pytest.fail(
            f'command failed ({proc.returncode}, {time.monotonic() - started:.1f}s): {" ".join(map(str, cmd))}\n'
            f'--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}',
            pytrace=False,
        )
    return proc


# --------------------------------------------------------------------------- venvs

def _pypi_reachable():
    cafile = os.environ.get('PIP_CERT') or '/etc/ssl/certs/ca-certificates.crt'
    context = ssl.create_default_context(cafile=cafile if os.path.exists(cafile) else None)
    try:
        with urllib.request.urlopen('https://pypi.org/simple/django-user-tasks/', timeout=15, context=context):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in ('DJANGO_SETTINGS_MODULE', 'PYTHONPATH', 'VIRTUAL_ENV')}


def _venv_python(path):
    return path / 'bin' / 'python'


def _venv_works(path, requirements, probe):
    stamp = path / '.ut-stamp'
    if not stamp.exists() or json.loads(stamp.read_text()) != requirements:
        return False
    # Outside the repo, or the source tree's egg-info would answer for the venv.
    proc = subprocess.run([str(_venv_python(path)), '-c', probe], capture_output=True, timeout=120, cwd=path,
                          env=_clean_env())
    return proc.returncode == 0


def build_venv(name, requirements, probe):
    """Return the python of a cached venv with ``requirements``, building it when needed."""
    path = VENV_CACHE / name
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    with open(VENV_CACHE / f'{name}.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs wait for one build
        if _venv_works(path, requirements, probe):
            return _venv_python(path)
        if not _pypi_reachable():
            skip_or_fail('PyPI (https://pypi.org) is unreachable: cannot install upstream django-user-tasks')
        shutil.rmtree(path, ignore_errors=True)
        run([sys.executable, '-m', 'venv', path], timeout=300)
        run([_venv_python(path), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', *requirements],
            timeout=PIP_TIMEOUT)
        run([_venv_python(path), '-c', probe], timeout=120, cwd=path, env=_clean_env())
        # The stamp is written last: an interrupted build is rebuilt next time.
        (path / '.ut-stamp').write_text(json.dumps(requirements))
        return _venv_python(path)


def our_runtime_requirements():
    """Our install_requires (from the editable install's metadata), without extras."""
    reqs = []
    for req in metadata.requires('django-user-tasks') or []:
        if 'extra ==' in req:
            continue
        if req.lower().startswith('django') and not req.lower().startswith('django-'):
            continue  # the caller pins Django
        reqs.append(req.split(';')[0].strip())
    return sorted(reqs)


@pytest.fixture(scope='session')
def upstream_python():
    """``upstream_python(version)`` -> python of a venv with upstream ``version`` installed."""
    cache = {}

    def get(version):
        if version not in cache:
            requirements = [f'django-user-tasks=={version}', UPSTREAM[version], *DRIVERS]
            probe = ('import importlib.metadata as m, django, psycopg2, pymysql; '
                     f'assert m.version("django-user-tasks") == {version!r}')
            cache[version] = build_venv(f'upstream-{version}', requirements, probe)
        return cache[version]
    return get


def _our_django_matches(django_req):
    """True when the project venv's Django is the X.Y line of 'Django>=X.Y,<...'."""
    import django
    wanted = tuple(int(part) for part in django_req.split(',')[0].split('>=')[1].split('.')[:2])
    return django.VERSION[:2] == wanted


@pytest.fixture(scope='session')
def ours_python():
    """``ours_python(django_req)`` -> a python that runs our code (with PYTHONPATH=REPO)."""
    cache = {}

    def get(django_req):
        if django_req is None or _our_django_matches(django_req):
            return OUR_PYTHON
        if django_req not in cache:
            requirements = [django_req, *our_runtime_requirements(), *DRIVERS]
            probe = 'import django, celery, model_utils, rules, psycopg2, pymysql'
            tag = django_req.split(',')[0].replace('Django>=', '').replace('.', '')
            cache[django_req] = build_venv(f'ours-django{tag}', requirements, probe)
        return cache[django_req]
    return get


# ------------------------------------------------------------------------ services

def service_url(kind):
    return urlparse(os.environ.get(SERVICE_ENV[kind], SERVICE_DEFAULTS[kind]))


def admin_connect(kind, dbname=None):
    url = service_url(kind)
    if kind == 'postgres':
        import psycopg2
        conn = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or 'postgres',
                                password=url.password or None, dbname=dbname or 'postgres', connect_timeout=5)
        conn.autocommit = True
        return conn
    import pymysql
    return pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username or 'root',
                           password=url.password or '', database=dbname, connect_timeout=5, autocommit=True,
                           charset='utf8mb4')


@pytest.fixture(scope='session')
def require_service():
    checked = {}

    def check(kind):
        if kind not in checked:
            try:
                admin_connect(kind).close()
                checked[kind] = None
            except Exception as exc:  # noqa: BLE001
                url = service_url(kind)
                checked[kind] = f'{SERVICE_LABEL[kind]} unreachable at {url.hostname}:{url.port}: {exc}'
        if checked[kind]:
            skip_or_fail(checked[kind])
    return check


def recreate_database(kind, name):
    conn = admin_connect(kind)
    try:
        with conn.cursor() as cur:
            if kind == 'postgres':
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
            else:
                cur.execute(f'DROP DATABASE IF EXISTS `{name}`')
                cur.execute(f'CREATE DATABASE `{name}` CHARACTER SET utf8mb4')
    finally:
        conn.close()


def drop_database(kind, name):
    try:
        conn = admin_connect(kind)
    except Exception:  # noqa: BLE001 - nothing to clean up if the service went away
        return
    try:
        with conn.cursor() as cur:
            if kind == 'postgres':
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                cur.execute(f'DROP DATABASE IF EXISTS `{name}`')
    finally:
        conn.close()


def write_settings(directory, kind, dbname, *, auto_field=None):
    """A minimal settings module ``upgrade_settings`` in ``directory``."""
    url = service_url(kind)
    if kind == 'postgres':
        database = {'ENGINE': 'django.db.backends.postgresql'}
    else:
        database = {'ENGINE': 'django.db.backends.mysql', 'OPTIONS': {'charset': 'utf8mb4'}}
    database.update({
        'NAME': dbname, 'USER': url.username or '', 'PASSWORD': url.password or '',
        'HOST': url.hostname, 'PORT': str(url.port or ''),
    })
    directory.mkdir(parents=True, exist_ok=True)
    (directory / 'upgrade_settings.py').write_text(textwrap.dedent(f'''\
        try:
            import pymysql
            pymysql.install_as_MySQLdb()
        except ImportError:
            pass

        SECRET_KEY = 'upgrade-tests'
        USE_TZ = True
        TIME_ZONE = 'UTC'
        INSTALLED_APPS = [
            'django.contrib.auth',
            'django.contrib.contenttypes',
            'user_tasks',
        ]
        DATABASES = {{'default': {database!r}}}
        MEDIA_ROOT = {str(directory / 'media')!r}
        CELERY_TASK_ALWAYS_EAGER = True
        CELERY_BROKER_URL = 'memory://'
        '''))
    if auto_field:
        with open(directory / 'upgrade_settings.py', 'a', encoding='utf-8') as handle:
            handle.write(f'DEFAULT_AUTO_FIELD = {auto_field!r}\n')
    return directory


def django_env(settings_dir, *, ours):
    env = _clean_env()
    env['DJANGO_SETTINGS_MODULE'] = 'upgrade_settings'
    env['PYTHONPATH'] = os.pathsep.join([str(settings_dir), str(REPO)] if ours else [str(settings_dir)])
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    return env


# ------------------------------------------------------------------------- schema

def schema_snapshot(kind, dbname):
    """Columns, indexes and constraints of the user_tasks tables, in comparable form."""
    conn = admin_connect(kind, dbname)
    snap = {'columns': {}, 'column_order': {}, 'indexes': {}, 'constraints': {}}
    try:
        with conn.cursor() as cur:
            if kind == 'postgres':
                cur.execute(r"""
                    SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable,
                           character_maximum_length, numeric_precision, column_default, is_identity,
                           identity_generation
                    FROM information_schema.columns
                    WHERE table_catalog = current_database() AND table_schema = 'public'
                      AND table_name LIKE 'user\_tasks\_%%'
                    ORDER BY table_name, ordinal_position""")
                for (table, column, pos, data_type, udt, nullable, length, precision, default, identity,
                     generation) in cur.fetchall():
                    snap['columns'][f'{table}.{column}'] = {
                        'type': data_type, 'udt': udt, 'nullable': nullable, 'max_length': length,
                        'precision': precision, 'default': default, 'identity': identity,
                        'identity_generation': generation,
                    }
                    snap['column_order'].setdefault(table, []).append(column)
                cur.execute(r"""
                    SELECT tablename, indexname, indexdef FROM pg_indexes
                    WHERE schemaname = 'public' AND tablename LIKE 'user\_tasks\_%%'""")
                for table, name, definition in cur.fetchall():
                    snap['indexes'][f'{table}.{name}'] = definition
                cur.execute(r"""
                    SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
                    FROM pg_constraint WHERE conrelid::regclass::text LIKE 'user\_tasks\_%%'""")
                for table, name, contype, definition in cur.fetchall():
                    snap['constraints'][f'{table}.{name}'] = f'{contype}: {definition}'
            else:
                cur.execute(r"""
                    SELECT table_name, column_name, ordinal_position, data_type, column_type, is_nullable,
                           character_maximum_length, numeric_precision, column_default, extra,
                           character_set_name, collation_name
                    FROM information_schema.columns
                    WHERE table_schema = DATABASE() AND table_name LIKE 'user\_tasks\_%%'
                    ORDER BY table_name, ordinal_position""")
                for (table, column, pos, data_type, column_type, nullable, length, precision, default, extra,
                     charset, collation) in cur.fetchall():
                    snap['columns'][f'{table}.{column}'] = {
                        'type': data_type, 'column_type': column_type, 'nullable': nullable,
                        'max_length': length, 'precision': precision, 'default': default, 'extra': extra,
                        'charset': charset, 'collation': collation,
                    }
                    snap['column_order'].setdefault(table, []).append(column)
                cur.execute(r"""
                    SELECT table_name, index_name, non_unique, seq_in_index, column_name
                    FROM information_schema.statistics
                    WHERE table_schema = DATABASE() AND table_name LIKE 'user\_tasks\_%%'
                    ORDER BY table_name, index_name, seq_in_index""")
                for table, name, non_unique, _seq, column in cur.fetchall():
                    entry = snap['indexes'].setdefault(f'{table}.{name}', {'unique': not non_unique, 'columns': []})
                    entry['columns'].append(column)
                cur.execute(r"""
                    SELECT tc.table_name, tc.constraint_name, tc.constraint_type,
                           kcu.column_name, kcu.referenced_table_name, kcu.referenced_column_name
                    FROM information_schema.table_constraints tc
                    LEFT JOIN information_schema.key_column_usage kcu
                      ON kcu.constraint_schema = tc.constraint_schema AND kcu.table_name = tc.table_name
                     AND kcu.constraint_name = tc.constraint_name
                    WHERE tc.table_schema = DATABASE() AND tc.table_name LIKE 'user\_tasks\_%%'""")
                for table, name, ctype, column, ref_table, ref_column in cur.fetchall():
                    snap['constraints'][f'{table}.{name}'] = (
                        f'{ctype}: {column}' + (f' -> {ref_table}.{ref_column}' if ref_table else ''))
                cur.execute(r"""
                    SELECT table_name, constraint_name, check_clause FROM information_schema.check_constraints
                    WHERE constraint_schema = DATABASE() AND table_name LIKE 'user\_tasks\_%%'""")
                for table, name, clause in cur.fetchall():
                    snap['constraints'][f'{table}.{name}'] = f'CHECK: {clause}'
    finally:
        conn.close()
    return snap


def schema_diff(expected, actual, expected_label='upstream', actual_label='ours'):
    """Human-readable differences between two snapshots (empty when identical)."""
    lines = []
    for section in ('columns', 'indexes', 'constraints', 'column_order'):
        left, right = expected[section], actual[section]
        for key in sorted(set(left) | set(right)):
            if key not in right:
                lines.append(f'{section}: {key} only in {expected_label}: {left[key]}')
            elif key not in left:
                lines.append(f'{section}: {key} only in {actual_label}: {right[key]}')
            elif left[key] != right[key]:
                if isinstance(left[key], dict):
                    for attr in sorted(set(left[key]) | set(right[key])):
                        if left[key].get(attr) != right[key].get(attr):
                            lines.append(f'{section}: {key}.{attr}: {expected_label}={left[key].get(attr)!r} '
                                         f'{actual_label}={right[key].get(attr)!r}')
                else:
                    lines.append(f'{section}: {key}: {expected_label}={left[key]!r} {actual_label}={right[key]!r}')
    return lines


def applied_migrations(kind, dbname, app='user_tasks'):
    conn = admin_connect(kind, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT name FROM django_migrations WHERE app = %s ORDER BY name', [app])
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()

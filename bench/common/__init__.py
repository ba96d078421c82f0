"""
Shared set-up of the benchmarks in ``bench/``: a private database, broker DB and queue per script.

Each benchmark is a standalone script (``.venv/bin/python bench/NAME.py``) that prints one
JSON line.  It reuses the test project (``tests.settings``, the ``tests.celery`` app and the
tasks in ``tests/tasks.py``) through its environment variables, on real services reached on
loopback only: PostgreSQL (and MariaDB where a row asks for it) and Redis.  Every script
drops and recreates its own database (``<prefix>_bench_<name>_<kind>``, where the prefix is
the database name of ``USER_TASKS_TEST_POSTGRES`` / ``USER_TASKS_TEST_MARIADB``), uses the Redis
database of ``USER_TASKS_TEST_REDIS`` as its broker and the next one for results (as the
integration tests do), and its own queue, so runs with private addresses stay apart from
each other and from anybody else's data.

This package lives in a sub-directory so that ``make bench`` (every ``bench/*.py``) does not
run it as a benchmark.
"""
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ('127.0.0.1', 'localhost', '::1')

#: The worker configurations the throughput benchmarks compare: Celery's and Django's
#: defaults (the fix-up closes connections around every task, ``CONN_MAX_AGE`` 0), and the
#: host keeping connections (``CONN_MAX_AGE`` and ``CELERY_DB_REUSE_MAX``, read by
#: ``bench.common.settings``).
WORKER_CONFIGS = {
    'default': {},
    'kept': {'USER_TASKS_BENCH_CONN_MAX_AGE': '300', 'USER_TASKS_BENCH_DB_REUSE_MAX': '1000000'},
}

SERVICE_DEFAULTS = {
    'postgres': 'postgres://postgres@127.0.0.1:5432/user_tasks',
    'mariadb': 'mysql://root@127.0.0.1:3306/user_tasks',
    'redis': 'redis://127.0.0.1:6379/0',
}


def service_url(kind):
    """The address of a service, as ``tests.settings`` reads it; refused unless on loopback."""
    url = os.environ.get(f'USER_TASKS_TEST_{kind.upper()}', SERVICE_DEFAULTS[kind])
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f'bench: {kind} must be on loopback, not {host!r}')
    return url


def redis_url(offset=0):
    """The loopback Redis of the tests: its database (``offset`` 0, the broker) or the next (1, results)."""
    url = urlparse(service_url('redis'))
    base = int(url.path.lstrip('/') or 0)
    return url._replace(path=f'/{(base + offset) % 16}').geturl()


def database_name(bench, db='postgres'):
    """The private database of one benchmark: ``<name of the service URL's database>_bench_<bench>_<db>``."""
    prefix = urlparse(service_url(db)).path.lstrip('/') or 'user_tasks'
    return f'{prefix}_bench_{bench}_{db}'


def _postgres_admin(*statements):
    """Run ``statements`` in autocommit on the ``postgres`` database of ``USER_TASKS_TEST_POSTGRES``."""
    import psycopg2
    url = urlparse(service_url('postgres'))
    connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or '',
                                  password=url.password or '', dbname='postgres', connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def recreate_postgres(name):
    """Drop and create the PostgreSQL database ``name`` (``WITH (FORCE)``: a stopped worker may linger)."""
    _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def _recreate_mariadb(name):
    import pymysql
    url = urlparse(service_url('mariadb'))
    connection = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username or 'root',
                                 password=url.password or '', connect_timeout=5, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS `{name}`')
            cursor.execute(f'CREATE DATABASE `{name}` CHARACTER SET utf8mb4')
    finally:
        connection.close()


def configure(bench, db='postgres', broker=False, results=False, extra_env=None):
    """
    Point ``tests.settings`` at this benchmark's own database, Redis database and queue.

    ``broker``: publish to the Redis database of ``USER_TASKS_TEST_REDIS`` (else in memory);
    ``results``: store results in the next Redis database.  Sets the environment (inherited
    by any worker the script starts), recreates the database, sets Django up and migrates.
    Returns the environment it set.
    """
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    name = database_name(bench, db)
    env = {
        'DJANGO_SETTINGS_MODULE': 'bench.common.settings',
        'USER_TASKS_TEST_DB': db,
        'USER_TASKS_TEST_DB_NAME': name,
        'USER_TASKS_TEST_QUEUE': f'{name}_queue',
        'USER_TASKS_TEST_BROKER': 'redis' if broker else 'memory',
    }
    if broker:
        env['USER_TASKS_TEST_REDIS'] = redis_url(0)
    if results:
        env['USER_TASKS_TEST_RESULT_BACKEND'] = redis_url(1)
    env.update(extra_env or {})
    os.environ.update(env)
    {'postgres': recreate_postgres, 'mariadb': _recreate_mariadb}[db](name)
    import django
    django.setup()
    from django.core.management import call_command
    call_command('migrate', verbosity=0, interactive=False)
    return env


def drop_postgres(name):
    """Drop a PostgreSQL database of the benchmarks (``WITH (FORCE)``: a stopped worker may linger)."""
    _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_database(bench, db='postgres'):
    """Drop the benchmark's database again (the data is large for some scripts)."""
    from django.db import connections
    connections.close_all()
    name = database_name(bench, db)
    if db == 'postgres':
        drop_postgres(name)
    else:
        import pymysql
        url = urlparse(service_url('mariadb'))
        connection = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username or 'root',
                                     password=url.password or '', connect_timeout=5, autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS `{name}`')
        finally:
            connection.close()


def start_worker(env, name, logfile, app='tests.celery', python=None, cwd=REPO, concurrency=2, env_base=None):
    """A ``celery worker`` (prefork) in its own session, consuming only ``env['USER_TASKS_TEST_QUEUE']``.

    Its environment is this process's (or ``env_base``) updated with ``env``.
    """
    command = [python or sys.executable, '-m', 'celery', '-A', app, 'worker', '--pool', 'prefork',
               '--concurrency', str(concurrency), '-Q', env['USER_TASKS_TEST_QUEUE'], '-n', name,
               '--loglevel', 'WARNING', '--without-gossip', '--without-mingle', '--without-heartbeat',
               '-f', logfile]
    worker_env = dict(os.environ if env_base is None else env_base, PYTHONPATH=cwd)
    worker_env.update(env)
    return subprocess.Popen(command, cwd=cwd, env=worker_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_worker(process, timeout=30):
    """Stop a worker from ``start_worker`` (warm shutdown: its children exit cleanly), else kill it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def load_average():
    """The 1-minute load average, rounded (the machine is shared: numbers go with it)."""
    return round(os.getloadavg()[0], 2)


def report(bench, **results):
    """Print the benchmark's one JSON line."""
    print(json.dumps({'bench': bench, **results}, sort_keys=False), flush=True)


class Deadline:
    """A time bound for a benchmark: ``check()`` exits with a message once it is past."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self):
        return self.end - time.monotonic()

    def check(self, what):
        if time.monotonic() > self.end:
            raise SystemExit(f'bench: over its {self.seconds:.0f} s bound while {what}')


def empty_status_tables():
    """
    Empty the status and artifact tables between rounds, in one statement.

    ``QuerySet.delete()`` would leave every row dead on PostgreSQL: autovacuum then cleans them
    up during the next timed round, on the cores the worker runs on, and charges whichever
    kind runs then.  TRUNCATE leaves nothing to clean (SQLite has no TRUNCATE: a DELETE there).
    """
    from django.db import connection  # noqa: PLC0415

    from user_tasks.models import UserTaskArtifact, UserTaskStatus  # noqa: PLC0415
    tables = [connection.ops.quote_name(model._meta.db_table) for model in (UserTaskArtifact, UserTaskStatus)]
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        else:
            for table in tables:
                cursor.execute(f'DELETE FROM {table}')

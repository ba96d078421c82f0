"""
Shared set-up of the benchmarks in ``bench/``: a private database, broker DB and queue per script.

Each benchmark is a standalone script (``.venv/bin/python bench/NAME.py``) that prints one
JSON line.  It reuses the test project (``tests.settings``, the ``tests.celery`` app and the
tasks in ``tests/tasks.py``) through its environment variables, on real services reached on
loopback only: PostgreSQL (and MariaDB where a row asks for it) and Redis.  Every script
drops and recreates its own database (``bench_<name>_<kind>``), uses its own Redis database
number and its own queue, so it neither reads nor disturbs anybody else's data.

This package lives in a sub-directory so that ``make bench`` (every ``bench/*.py``) does not
run it as a benchmark.
"""
import json
import os
import sys
import time
from urllib.parse import urlparse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ('127.0.0.1', 'localhost', '::1')

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


def redis_url(db):
    """The loopback Redis server of the tests, database number ``db``."""
    return urlparse(service_url('redis'))._replace(path=f'/{db}').geturl()


def _recreate_postgres(name):
    import psycopg2
    url = urlparse(service_url('postgres'))
    connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or '',
                                  password=url.password or '', dbname='postgres', connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


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


def configure(bench, db='postgres', broker_db=None, result_db=None, extra_env=None):
    """
    Point ``tests.settings`` at this benchmark's own database, Redis database and queue.

    Sets the environment (inherited by any worker the script starts), recreates the
    database, sets Django up and migrates.  Returns the environment it set.
    """
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    name = f'bench_{bench}_{db}'
    env = {
        'DJANGO_SETTINGS_MODULE': 'bench.common.settings',
        'USER_TASKS_TEST_DB': db,
        'USER_TASKS_TEST_DB_NAME': name,
        'USER_TASKS_TEST_QUEUE': f'user_tasks_bench_{bench}',
        'USER_TASKS_TEST_BROKER': 'redis' if broker_db is not None else 'memory',
    }
    if broker_db is not None:
        env['USER_TASKS_TEST_REDIS'] = redis_url(broker_db)
    if result_db is not None:
        env['USER_TASKS_TEST_RESULT_BACKEND'] = redis_url(result_db)
    env.update(extra_env or {})
    os.environ.update(env)
    {'postgres': _recreate_postgres, 'mariadb': _recreate_mariadb}[db](name)
    import django
    django.setup()
    from django.core.management import call_command
    call_command('migrate', verbosity=0, interactive=False)
    return env


def drop_database(bench, db='postgres'):
    """Drop the benchmark's database again (the data is large for some scripts)."""
    from django.db import connections
    connections.close_all()
    name = f'bench_{bench}_{db}'
    if db == 'postgres':
        import psycopg2
        url = urlparse(service_url('postgres'))
        connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or '',
                                      password=url.password or '', dbname='postgres', connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()
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

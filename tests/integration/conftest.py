"""
The integration layer: a real Celery worker, broker and database.

``USER_TASKS_TEST_DB`` (postgres|mariadb) and ``USER_TASKS_TEST_BROKER`` (redis|rabbitmq)
choose the services (addresses in ``tests/settings.py``).  Each service is checked first
with a TCP connect and a real client call: a service that is down skips the suite with a
message naming it, or fails it when ``CI=true``.

pytest-django creates the test database; one session-wide ``celery worker`` subprocess
(prefork, two children) is pointed at that database (``USER_TASKS_TEST_DB_NAME``), at the
same broker, at a result backend both processes share (Redis) and at a queue private to
this run.  It logs every ``user_task_stopped`` to a file (``stopped_log.py``), since the
signal fires in the worker.  A failing test gets the worker's log in its report.
"""
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

import pytest
from django.conf import settings

from tests import settings as test_settings
from tests.celery import app as celery_app
from tests.integration.workers import stop_process, worker_env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_ID = f'{os.getpid()}_{uuid.uuid4().hex[:8]}'
QUEUE = f"{os.environ.get('USER_TASKS_TEST_QUEUE', 'user_tasks_integration')}_{RUN_ID}"
WORKER_NAME = f'ut_integration_{RUN_ID}@{socket.gethostname()}'
# The default cache+memory:// backend lives in one process; chords and results need one
# both processes see.  Results go to the Redis database after the broker's.
RESULT_BACKEND = os.environ.get('USER_TASKS_TEST_RESULT_BACKEND') or (
    lambda url: url._replace(path=f'/{int(url.path.strip("/") or 0) + 1}').geturl()
)(urlparse(test_settings.SERVICES['redis']))

READY_TIMEOUT = 60
STOP_TIMEOUT = 15
IN_CI = os.environ.get('CI', '').lower() == 'true'

# Django and the Celery app are already set up when this file is imported (pytest-django
# loads the settings first), but Celery reads its configuration lazily: point the test
# process at the private queue and the shared result backend before anything publishes.
settings.CELERY_TASK_DEFAULT_QUEUE = QUEUE
settings.CELERY_RESULT_BACKEND = RESULT_BACKEND
celery_app.conf.task_default_queue = QUEUE
celery_app.conf.result_backend = RESULT_BACKEND

_state = {'worker': None, 'unavailable': []}


# -- service checks ---------------------------------------------------------------------

def _tcp(url, default_port):
    with socket.create_connection((url.hostname or '127.0.0.1', url.port or default_port), timeout=3):
        pass


def _check_postgres(address):
    import psycopg2
    url = urlparse(address)
    _tcp(url, 5432)
    connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or '',
                                  password=url.password or '', dbname='postgres', connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute('SELECT 1')
            assert cursor.fetchone() == (1,)
    finally:
        connection.close()


def _check_mariadb(address):
    import pymysql
    url = urlparse(address)
    _tcp(url, 3306)
    connection = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username or '',
                                 password=url.password or '', connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute('SELECT 1')
            assert cursor.fetchone() == (1,)
    finally:
        connection.close()


def _check_redis(address):
    import redis
    _tcp(urlparse(address), 6379)
    client = redis.Redis.from_url(address, socket_timeout=5, socket_connect_timeout=5)
    try:
        assert client.ping()
    finally:
        client.close()


def _check_rabbitmq(address):
    from kombu import Connection
    _tcp(urlparse(address), 5672)
    with Connection(address, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)
        connection.default_channel.basic_qos(0, 1, False)


CHECKS = {'postgres': _check_postgres, 'mariadb': _check_mariadb,
          'redis': _check_redis, 'rabbitmq': _check_rabbitmq}


def _required_services():
    """(service, address) pairs this run needs: the database, the broker, the result backend."""
    db, broker = test_settings.DB_KIND, test_settings.BROKER_KIND
    if db not in ('postgres', 'mariadb') or broker not in ('redis', 'rabbitmq'):
        _unavailable(f'the integration tests need USER_TASKS_TEST_DB=postgres|mariadb and '
                     f'USER_TASKS_TEST_BROKER=redis|rabbitmq (got {db!r} and {broker!r})')
    services = [(db, test_settings.SERVICES[db]), (broker, test_settings.SERVICES[broker])]
    if RESULT_BACKEND.startswith('redis://') and RESULT_BACKEND != test_settings.SERVICES['redis']:
        services.append(('redis', RESULT_BACKEND))
    return services


def _unavailable(message):
    _state['unavailable'].append(message)
    if IN_CI:
        pytest.fail(f'{message} (CI=true: a missing service is a failure)', pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope='session')
def integration_services():
    """Check every service this run needs; skip (or fail under CI=true) naming one that is down."""
    for service, address in _required_services():
        try:
            CHECKS[service](address)
        except Exception as exc:
            url = urlparse(address)
            where = f'{url.scheme}://{url.hostname}:{url.port or ""}{url.path}'  # no credentials
            _unavailable(f'{service} is not available at {where} ({type(exc).__name__}: {exc})')


@pytest.fixture(scope='session')
def django_db_setup(integration_services, django_db_setup):
    """pytest-django's test database, created only once the services answered."""


# -- the worker -------------------------------------------------------------------------

class Worker:
    """A ``celery worker`` subprocess and the files it writes."""

    def __init__(self, directory, db_name):
        self.log_path = os.path.join(directory, 'worker.log')
        self.stopped_log = os.path.join(directory, 'stopped.log')
        self.db_name = db_name
        self.process = None
        self._log = None
        #: The message protocol the worker publishes with (retries, chain steps, chord bodies).
        self.protocol = celery_app.conf.task_protocol

    def env(self):
        env = worker_env(self.db_name, QUEUE, RESULT_BACKEND, self.stopped_log)
        env['USER_TASKS_TEST_PROTOCOL'] = str(self.protocol)
        return env

    def use_protocol(self, protocol):
        """Restart the worker (warm shutdown) to publish with ``protocol``, unless it already does."""
        if protocol == self.protocol:
            return
        self.stop()
        self.protocol = protocol
        self.start(keep_stops=True)
        self.wait_ready()

    def start(self, keep_stops=False):
        if not keep_stops:
            open(self.stopped_log, 'w', encoding='utf-8').close()
        self._log = open(self.log_path, 'ab')
        command = [
            sys.executable, '-m', 'celery', '-A', 'tests.celery', 'worker',
            '--pool=prefork', '--concurrency=2', '--loglevel=info',
            '-Q', QUEUE, '-n', WORKER_NAME, '--without-gossip', '--without-mingle',
            '--include', 'tests.integration.stopped_log',
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self):
        """Ping the worker until it answers; bounded to READY_TIMEOUT seconds."""
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(READY_TIMEOUT * 2):
            if self.process.poll() is not None:
                pytest.fail(f'the celery worker exited with {self.process.returncode} before it was ready:\n'
                            f'{self.log_tail()}', pytrace=False)
            if celery_app.control.ping(destination=[WORKER_NAME], timeout=0.5):
                return
            if time.monotonic() > deadline:
                break
        pytest.fail(f'the celery worker did not answer a ping within {READY_TIMEOUT} s:\n{self.log_tail()}',
                    pytrace=False)

    def stop(self):
        """Warm shutdown (SIGTERM); SIGKILL the worker's process group after STOP_TIMEOUT seconds."""
        if self.process is None:
            return
        stop_process(self.process, self._log, STOP_TIMEOUT)

    def log_size(self):
        return os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0

    def log_tail(self, start=0, limit=20000):
        """The worker's log from byte ``start``, at most the last ``limit`` bytes of it."""
        with open(self.log_path, 'rb') as stream:
            stream.seek(max(start, self.log_size() - limit))
            return stream.read().decode('utf-8', 'replace')

    def stops(self):
        """The ``user_task_stopped`` signals logged so far, as (uuid, state) pairs."""
        with open(self.stopped_log, encoding='utf-8') as stream:
            return [tuple(line.rstrip('\n').split('\t')[:2]) for line in stream if line.strip()]


def _purge_queue():
    """Declare the run's queue and drop anything in it (a leftover of a crashed run by this name)."""
    with celery_app.connection_for_write() as connection:
        queue = celery_app.amqp.queues[QUEUE](connection.default_channel)
        queue.declare()
        queue.purge()


def _delete_queue():
    with celery_app.connection_for_write() as connection:
        celery_app.amqp.queues[QUEUE](connection.default_channel).delete()


@pytest.fixture(scope='session')
def real_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real prefork worker on the test database, the run's broker and its private queue."""
    assert celery_app.amqp.default_queue.name == QUEUE, 'the test process would publish to another queue'
    assert celery_app.conf.result_backend == RESULT_BACKEND
    assert type(celery_app.backend).__module__ != 'celery.backends.cache', 'results must cross processes'
    db_name = settings.DATABASES['default']['NAME']
    process = Worker(str(tmp_path_factory.mktemp('worker')), db_name)
    _purge_queue()
    process.start()
    _state['worker'] = process
    try:
        process.wait_ready()
        yield process
    finally:
        _state['worker'] = None
        process.stop()
        try:
            _delete_queue()
        except Exception as exc:
            print(f'could not delete the queue {QUEUE}: {exc!r}', file=sys.stderr)
    # Every stop is in the log once the worker has shut down: none may be announced twice.
    repeated = {key: count for key, count in Counter(uuid_ for uuid_, _ in process.stops()).items() if count > 1}
    assert not repeated, f'user_task_stopped sent more than once for {repeated}'


@pytest.fixture(scope='module', params=[2, 1], ids=['proto2', 'proto1'])
def message_protocol(request, real_worker):
    """
    Run a module's message-handling scenarios under both protocols (module scope: one restart each way).

    Protocol 2 is Celery's default (other Django sites); protocol 1 is what edx-platform's
    Celery app sends.  The test process and the worker publish with the same protocol.
    """
    default = celery_app.conf.task_protocol
    real_worker.use_protocol(request.param)
    celery_app.conf.task_protocol = request.param
    celery_app.amqp.__dict__.pop('create_task_message', None)  # Celery caches the builder it used first
    try:
        assert celery_app.amqp.create_task_message == celery_app.amqp.task_protocols[request.param]
        yield request.param
    finally:
        celery_app.conf.task_protocol = default
        celery_app.amqp.__dict__.pop('create_task_message', None)
        real_worker.use_protocol(default)


@pytest.fixture
def worker(real_worker):
    """The session's worker; its log from this test on goes into the test's failure report."""
    real_worker.test_log_start = real_worker.log_size()
    return real_worker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the worker's log written during a failed test to its report."""
    outcome = yield
    report = outcome.get_result()
    running = _state['worker']
    if report.failed and running is not None and 'worker' in getattr(item, 'fixturenames', ()):
        start = getattr(running, 'test_log_start', 0)
        report.sections.append(('celery worker log', running.log_tail(start)))


def pytest_terminal_summary(terminalreporter):
    """Say plainly why the integration tests were skipped, even under -q."""
    for message in dict.fromkeys(_state['unavailable']):
        terminalreporter.write_line(f'integration tests skipped: {message}', yellow=True)

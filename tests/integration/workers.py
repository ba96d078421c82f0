"""
Celery workers the fault tests start, kill and restart themselves, and a private Redis.

``tests/integration/conftest.py`` runs one well-behaved session worker.  The fault tests
need others: more children, shortened recovery settings (passed as environment
variables, read by ``tests/settings.py``), their own queue, a broker of their own, and
workers they may ``kill -9``.  Each worker logs its ``user_task_stopped`` signals through
``tests/integration/stopped_log.py``; the test process appends its own to the same file.
"""
import os
import signal
import socket
import subprocess
import sys
import time

from tests import settings as test_settings
from tests.celery import app as celery_app

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 60
STOP_TIMEOUT = 15


def free_port():
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def children_of(pid):
    """The ids of the direct children of process ``pid`` (Linux /proc)."""
    try:
        with open(f'/proc/{pid}/task/{pid}/children', encoding='ascii') as stream:
            return [int(child) for child in stream.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stream:
            return stream.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def worker_env(db_name, queue, result_backend, stopped_log):
    """The environment of a worker subprocess using this run's database, broker and services."""
    env = dict(os.environ)
    env.update({
        'DJANGO_SETTINGS_MODULE': 'tests.settings',
        'USER_TASKS_TEST_DB': test_settings.DB_KIND,
        'USER_TASKS_TEST_BROKER': test_settings.BROKER_KIND,
        'USER_TASKS_TEST_DB_NAME': db_name,
        'USER_TASKS_TEST_QUEUE': queue,
        'USER_TASKS_TEST_RESULT_BACKEND': result_backend,
        'USER_TASKS_TEST_STOPPED_LOG': stopped_log,
        'PYTHONUNBUFFERED': '1',
    })
    for kind, address in test_settings.SERVICES.items():
        env[f'USER_TASKS_TEST_{kind.upper()}'] = address
    return env


class FaultWorker:
    """A ``celery worker`` subprocess on its own queue, with settings given as environment variables."""

    def __init__(self, directory, name, queue, db_name, concurrency=2, env=None, broker_url=None):
        self.directory = directory
        self.name = f'{name}@{socket.gethostname()}'
        self.queue = queue
        self.db_name = db_name
        self.concurrency = concurrency
        self.extra_env = dict(env or {})
        self.broker_url = broker_url
        self.log_path = os.path.join(directory, f'{name}.log')
        self.stopped_log = os.path.join(directory, f'{name}.stopped.log')
        self.process = None
        self._log = None

    def env(self):
        env = worker_env(self.db_name, self.queue, celery_app.conf.result_backend, self.stopped_log)
        if self.broker_url:
            env['USER_TASKS_TEST_BROKER'] = 'redis'
            env['USER_TASKS_TEST_REDIS'] = self.broker_url
        env.update(self.extra_env)
        return env

    def start(self):
        if not os.path.exists(self.stopped_log):
            open(self.stopped_log, 'w', encoding='utf-8').close()
        self._log = open(self.log_path, 'ab')
        command = [
            sys.executable, '-m', 'celery', '-A', 'tests.celery', 'worker',
            '--pool=prefork', f'--concurrency={self.concurrency}', '--loglevel=info',
            '-Q', self.queue, '-n', self.name, '--without-gossip', '--without-mingle',
            '--prefetch-multiplier=1', '--include', 'tests.integration.stopped_log',
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, app=celery_app):
        """Ping the worker until it answers and its children are up; bounded to READY_TIMEOUT seconds."""
        deadline = time.monotonic() + READY_TIMEOUT
        for _ in range(READY_TIMEOUT * 2):
            if self.process.poll() is not None:
                raise RuntimeError(f'the worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}')
            if app.control.ping(destination=[self.name], timeout=0.5) \
                    and len(children_of(self.process.pid)) >= self.concurrency:
                return self
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f'the worker {self.name} did not answer within {READY_TIMEOUT} s:\n{self.log_tail()}')

    def kill(self):
        """SIGKILL the worker's main process and every child (its whole process group)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        if self._log:
            self._log.close()

    def stop(self):
        """Warm shutdown (SIGTERM); SIGKILL the process group after STOP_TIMEOUT seconds."""
        if self.process is None:
            return
        stop_process(self.process)
        try:  # children that outlived a killed main process
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._log and not self._log.closed:
            self._log.close()

    def log_tail(self, limit=20000):
        if not os.path.exists(self.log_path):
            return ''
        with open(self.log_path, 'rb') as stream:
            stream.seek(max(0, os.path.getsize(self.log_path) - limit))
            return stream.read().decode('utf-8', 'replace')

    def stops(self):
        """The ``user_task_stopped`` signals logged so far (by the worker and the test), as (uuid, state)."""
        with open(self.stopped_log, encoding='utf-8') as stream:
            return [tuple(line.rstrip('\n').split('\t')[:2]) for line in stream if line.strip()]


class PrivateRedis:
    """A ``redis-server`` this test owns, on a free loopback port, without persistence."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f'redis://127.0.0.1:{self.port}/0'
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
             '--dir', self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        for _ in range(300):
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as sock:
                    sock.sendall(b'PING\r\n')
                    if sock.recv(16).startswith(b'+PONG'):
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RuntimeError(f'redis-server on port {self.port} did not start')

    def kill(self):
        """SIGKILL: every message it held is gone (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)


def wait_for(description, predicate, timeout, poll=0.05):
    """Poll ``predicate`` until it returns a true value; bounded in time and in count."""
    import pytest
    deadline = time.monotonic() + timeout
    value = None
    for _ in range(int(timeout / poll) + 2):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
    pytest.fail(f'timed out after {timeout} s waiting for {description}; last seen: {value!r}')
    return None


def stop_process(process, log=None, timeout=STOP_TIMEOUT):
    """Warm shutdown (SIGTERM); SIGKILL the process group after ``timeout`` seconds; close its log."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    if log is not None and not log.closed:
        log.close()

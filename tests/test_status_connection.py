"""
The status connection (``user_tasks.status_connection``): when it is used, what survives, how it falls back.

The unit layer runs on SQLite, which never gets one (a single writer); these tests let
SQLite stand in for a server database where they need the connection itself.  The
behaviour on PostgreSQL and MariaDB through a real worker is pinned by
``tests/integration/test_transaction_progress.py``.
"""
import pymysql
import pytest
from django.db import OperationalError, connection, connections, transaction

from tests.tasks import noop_task
from user_tasks import signals, status_connection
from user_tasks.conf import settings
from user_tasks.models import UserTaskStatus

ALIAS = 'default' + status_connection.SUFFIX
pytestmark = pytest.mark.skipif(
    connection.vendor != 'sqlite',
    reason='unit layer: SQLite stands in for a server database; see tests/integration/test_transaction_progress.py')


@pytest.fixture(autouse=True)
def inactive():
    """Every test starts and ends outside a task, with no status connection of this thread."""
    status_connection.deactivate()
    yield
    status_connection.deactivate()
    status_connection.close()
    if ALIAS in getattr(status_connection._local, 'aliases', set()):
        del connections[ALIAS]
        status_connection._local.aliases.discard(ALIAS)
    status_connection._local.pins = {}


@pytest.fixture
def server_database(monkeypatch):
    """Let SQLite stand in for a database that gets a status connection."""
    monkeypatch.setattr(status_connection, 'VENDORS', ('sqlite',))


def test_outside_a_task_the_models_own_connection_is_used():
    assert status_connection.alias_for(UserTaskStatus) == 'default'


def test_sqlite_never_gets_one():
    status_connection.activate()
    assert status_connection.alias_for(UserTaskStatus) == 'default'


def test_the_setting_turns_it_off(server_database):
    settings.USER_TASKS_STATUS_CONNECTION = False
    try:
        status_connection.activate()
        assert status_connection.alias_for(UserTaskStatus) == 'default'
    finally:
        del settings.USER_TASKS_STATUS_CONNECTION


@pytest.mark.django_db(transaction=True)
def test_in_a_task_writes_go_through_a_connection_celerys_fixup_does_not_close(server_database, make_status):
    status = make_status(state=UserTaskStatus.IN_PROGRESS, total_steps=3)
    status_connection.activate()
    assert status_connection.alias_for(UserTaskStatus) == ALIAS
    status.increment_completed_steps()
    own = connections[ALIAS]
    assert own.connection is not None and own.alias == ALIAS
    # Not one of Django's configured connections: what Celery's fix-up closes around each task.
    assert own not in connections.all()
    for each in connections.all(initialized_only=True):
        each.close()
    assert own.connection is not None
    # Instances keep the model's alias: rows related to them are written by the body.
    assert status._state.db == 'default'
    status_connection.deactivate()
    assert status_connection.alias_for(UserTaskStatus) == 'default'
    assert UserTaskStatus.objects.get(pk=status.pk).completed_steps == 1


def _signal_run(task_id, is_eager):
    noop_task.push_request(id=task_id, is_eager=is_eager, retries=0, args=(), kwargs={})
    try:
        signals.start_user_task(task=noop_task)
        return getattr(status_connection._local, 'active', False)
    finally:
        signals.task_ended(sender=noop_task)
        noop_task.pop_request()


@pytest.mark.django_db(transaction=True)
def test_only_a_worker_run_uses_it_until_postrun(make_status):
    make_status(task_id='worker-run')
    make_status(task_id='eager-run')
    assert _signal_run('worker-run', is_eager=False) is True
    assert status_connection._local.active is False
    # An eager run's row may sit in the caller's uncommitted transaction (TestCase, ATOMIC_REQUESTS).
    assert _signal_run('eager-run', is_eager=True) is False


def _lock_timeout(vendor):
    if vendor == 'postgresql':
        cause = type('LockNotAvailable', (Exception,), {'pgcode': '55P03'})('canceling statement due to lock timeout')
    else:
        cause = pymysql.err.OperationalError(1205, 'Lock wait timeout exceeded; try restarting transaction')
    error = OperationalError(*cause.args)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize('vendor', ['postgresql', 'mysql'])
@pytest.mark.django_db(transaction=True)
def test_a_lock_wait_follows_the_body_until_its_block_ends(server_database, vendor):
    status_connection.activate()
    calls = []

    def write(alias):
        calls.append(alias)
        if alias == ALIAS:
            raise _lock_timeout(vendor)
        return 'written'
    with transaction.atomic():
        assert status_connection.run(UserTaskStatus, write) == 'written'
        assert calls == [ALIAS, 'default']
        # Pinned: the rest of the block writes through the body's connection directly.
        assert status_connection.alias_for(UserTaskStatus) == 'default'
        with transaction.atomic():  # a savepoint: same outermost block
            assert status_connection.alias_for(UserTaskStatus) == 'default'
    assert status_connection.alias_for(UserTaskStatus) == ALIAS


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_between_tasks_is_reopened_once(server_database):
    status_connection.activate()
    calls = []

    def write(alias):
        calls.append(alias)
        if len(calls) == 1:
            raise OperationalError('server closed the connection unexpectedly')
        return connections[alias].cursor().execute('SELECT 1').fetchone()[0]
    assert status_connection.run(UserTaskStatus, write) == 1
    assert calls == [ALIAS, ALIAS]


@pytest.mark.django_db(transaction=True)
def test_an_artifact_inserted_in_the_block_pins_on_mysql_only(server_database, make_status, monkeypatch):
    from user_tasks.models import UserTaskArtifact
    status = make_status(state=UserTaskStatus.IN_PROGRESS)
    status_connection.activate()
    with transaction.atomic():
        UserTaskArtifact.objects.create(status=status, text='partial')
        # PostgreSQL (and this SQLite stand-in): the artifact's key-share lock does not block the status.
        assert status_connection.alias_for(UserTaskStatus) == ALIAS
    monkeypatch.setattr(connection, 'vendor', 'mysql')
    monkeypatch.setattr(status_connection, 'VENDORS', ('sqlite', 'mysql'))
    with transaction.atomic():
        assert status_connection.alias_for(UserTaskStatus) == ALIAS
        UserTaskArtifact.objects.create(status=status, text='partial')
        assert status_connection.alias_for(UserTaskStatus) == 'default'
    assert status_connection.alias_for(UserTaskStatus) == ALIAS


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_drops_inherited_connections_without_closing_them(server_database, make_status):
    status = make_status(state=UserTaskStatus.IN_PROGRESS)
    status_connection.activate()
    status.increment_completed_steps()
    inherited = connections[ALIAS]
    status_connection._forget_after_fork()
    assert inherited in status_connection._abandoned
    assert inherited.connection is not None  # not closed: the parent's session lives on
    status_connection._abandoned.remove(inherited)
    inherited.close()


@pytest.mark.django_db(transaction=True)
def test_an_end_is_committed_durably_in_the_same_round_trip(server_database, monkeypatch):
    """PostgreSQL with asynchronous commits: a durable write carries SET LOCAL in front, in the same string."""
    status_connection.activate()
    connections[status_connection.alias_for(UserTaskStatus)].ensure_connection()  # opened as SQLite would
    monkeypatch.setattr(status_connection, '_commits_asynchronously', lambda connection: True)
    monkeypatch.setattr(status_connection, '_one_string', lambda connection: True)  # as psycopg2
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)

    def write(alias):
        with connections[alias].execute_wrapper(record):
            connections[alias].cursor().execute('UPDATE t SET x = 1')
    status_connection.run(UserTaskStatus, write, durable=True)
    status_connection.run(UserTaskStatus, write)
    assert sent == ['SET LOCAL synchronous_commit TO on; UPDATE t SET x = 1', 'UPDATE t SET x = 1']


@pytest.mark.django_db(transaction=True)
def test_a_publish_in_autocommit_does_not_wait_for_the_disk(monkeypatch, user):
    """PostgreSQL: the publish's INSERT carries SET LOCAL synchronous_commit TO off; inside the caller's block, not."""
    from tests.conftest import UNCONSUMED_QUEUE
    monkeypatch.setattr(status_connection, '_commits_asynchronously', lambda connection: True)
    monkeypatch.setattr(status_connection, '_one_string', lambda connection: True)  # as psycopg2
    applied = []

    def prefixed(setting):  # records what would be sent in front, sends nothing SQLite cannot run
        def wrapper(execute, sql, params, many, context):
            applied.append((setting, sql.split()[0]))
            return execute(sql, params, many, context)
        return wrapper
    monkeypatch.setattr(status_connection, '_prefixed', prefixed)
    noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    assert applied == [('SET LOCAL synchronous_commit TO off', 'INSERT')]
    with transaction.atomic():
        noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    # The caller's transaction keeps the caller's durability.
    assert applied == [('SET LOCAL synchronous_commit TO off', 'INSERT')]
    assert UserTaskStatus.objects.count() == 2


@pytest.mark.parametrize('driver, one_string', [('psycopg2', True), ('psycopg', False)])
def test_set_local_rides_in_front_of_a_statement_only_with_psycopg2(driver, one_string):
    """psycopg 3 puts its cursor on a string's first result (the SET's): it gets a transaction of its own."""
    from types import SimpleNamespace
    connection = SimpleNamespace(Database=SimpleNamespace(__name__=driver), settings_dict={'OPTIONS': {}})
    assert status_connection._one_string(connection) is one_string


def _driver_error(args, **codes):
    """An exception as a driver raises it, with the code attributes it sets."""
    error = Exception(*args)
    for name, value in codes.items():
        setattr(error, name, value)
    return error


@pytest.mark.parametrize('driver_error, is_lock_timeout', [
    (_driver_error(['canceling statement due to lock timeout'], pgcode='55P03'), True),  # psycopg2
    (_driver_error(['canceling statement due to lock timeout'], sqlstate='55P03'), True),  # psycopg 3
    (_driver_error([1205, 'Lock wait timeout exceeded'], sqlstate='HY000'), True),  # PyMySQL
    (_driver_error([1213, 'Deadlock found'], sqlstate='40001'), False),
    (_driver_error(['deadlock detected'], pgcode='40P01'), False),
])
def test_a_lock_wait_cut_short_is_read_from_every_driver(driver_error, is_lock_timeout):
    error = OperationalError('wrapped by Django')
    error.__cause__ = driver_error
    assert status_connection._is_lock_timeout(error) is is_lock_timeout

"""
The database connection a worker writes a running task's status through.

While a worker runs a user task, the transitions of its status rows (the start, steps,
custom states, the end) go through a connection of their own to the same database, in
autocommit, instead of the connection the task body uses:

- progress, stage and cancellation are visible while the body holds a transaction open
  (imports run inside ``transaction.atomic()``): each step commits at once, and a cancel
  committed by the page is seen by the next step inside the block;
- the connection is not one of Django's (it is not in ``DATABASES``), so Celery's Django
  fix-up, which closes every Django connection before and after each task, leaves it open:
  a task no longer opens a connection for its status, which cost more than its statements.

Only server databases get one (PostgreSQL, MySQL/MariaDB): SQLite has a single writer, so a
second connection would wait for the body's transaction.  Eager runs (tests, hosts with
``CELERY_TASK_ALWAYS_EAGER``) keep the caller's connection: the row may sit in the caller's
uncommitted transaction, ``TestCase``'s included.

A lock held by the body's own transaction would make the status connection wait for a
commit that cannot come before the step returns: an artifact inserted inside the block
locks its status row on MySQL/MariaDB (a shared lock on the referenced row), and a status
saved inside the block locks it everywhere.  Those writes are seen (``post_save``) and the
status goes through the body's connection until its outermost block ends; any other wait
is cut short by a one-second lock timeout on the status connection, and the write is then
made on the body's connection.  Either way the write lands, only later visible.
``docs/decisions/0012-status-connection.rst`` weighs the alternatives.

On PostgreSQL (``USER_TASKS_STATUS_ASYNC_COMMIT``) the status connection's starts, steps
and stages commit without waiting for the disk flush, its ends durably; ``publishing``
gives a publish made outside a transaction the same treatment on the publisher's own
connection.  Both use ``SET LOCAL`` in front of the statement, in the same round trip.

Layer: leaves (beside ``checks``).  Imports only Django and ``user_tasks.conf``; the hub
(``lifecycle``), the domain (``models``) and the layers above use it.
"""
import contextlib
import logging
import os
import threading

from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.backends.signals import connection_created
from django.db.models.signals import post_save

from user_tasks.conf import settings

LOG = logging.getLogger(__name__)

#: Appended to the alias of the database the status model is written to.
SUFFIX = '__user_tasks_status'
#: Vendors that get a status connection.
VENDORS = ('postgresql', 'mysql')
#: Seconds a status write waits for a row lock before it is made on the body's connection.
LOCK_TIMEOUT = 1
_SESSION = {
    'postgresql': [f"SET lock_timeout = '{LOCK_TIMEOUT}s'"],
    'mysql': [f'SET SESSION innodb_lock_wait_timeout = {LOCK_TIMEOUT}'],
}
#: PostgreSQL, ``USER_TASKS_STATUS_ASYNC_COMMIT``: starts, steps and stages do not wait for the WAL flush.
_ASYNC_COMMIT = 'SET synchronous_commit TO off'
_DURABLE = 'SET LOCAL synchronous_commit TO on'
_ASYNC_LOCAL = 'SET LOCAL synchronous_commit TO off'

#: Error codes of a lock wait cut short: PostgreSQL's lock_not_available, MySQL's ER_LOCK_WAIT_TIMEOUT.
_LOCK_TIMEOUT_CODES = ('55P03', 1205)

_local = threading.local()
#: Connections inherited by a forked child: kept referenced so they are never closed there
#: (closing would end the parent's session on the server).
_abandoned = []


def activate():
    """Route status writes of this thread through the status connection (a worker starts a task)."""
    _local.active = bool(settings.USER_TASKS_STATUS_CONNECTION)


def deactivate():
    """Back to the model's own connection (the task has ended); a green thread's connection is closed."""
    _local.active = False
    if _GREEN:
        close()


def alias_for(model):
    """The alias to write ``model``'s rows through now: the status connection's, or the model's own."""
    base = router.db_for_write(model)
    if not getattr(_local, 'active', False):
        return base
    connection = connections[base]
    if connection.vendor not in VENDORS or _pinned(base, connection):
        return base
    return _open(base)


def base_alias(model):
    """The model's own alias (what instances carry in ``_state.db``)."""
    return router.db_for_write(model)


def run(model, operation, durable=False):
    """
    Run ``operation(alias)`` through the status connection, falling back to the model's own.

    ``durable``: the write ends a task.  On a status connection that commits asynchronously
    (PostgreSQL, ``USER_TASKS_STATUS_ASYNC_COMMIT``) its commit then waits for the flush, as
    every write on the host's own connections does.

    A lock wait cut short (the body's transaction holds the row) pins the status to the
    body's connection until its outermost block ends, and runs the operation there.  A
    connection lost while idle between tasks (a server restart, MySQL's ``wait_timeout``) is
    reopened once.
    """
    alias = alias_for(model)
    base = base_alias(model)
    if alias == base:
        return operation(alias)
    if durable and _commits_asynchronously(connections[alias]):
        operation = _durably(operation, alias)
    try:
        return operation(alias)
    except (OperationalError, InterfaceError) as exc:
        if _is_lock_timeout(exc):
            LOG.info('Status write waited for a lock held by the task body; writing through its connection (%s)', exc)
            _pin(base)
            return operation(base)
        # Lost while idle between tasks (a server restart, MySQL's wait_timeout) or a deadlock
        # victim: the transitions are conditional UPDATEs, so running one again is safe.
        LOG.warning('Status write failed (%r): retrying once on a fresh status connection', exc)
        connections[alias].close()
        return operation(alias)


def _commits_asynchronously(connection):
    return connection.vendor == 'postgresql' and bool(settings.USER_TASKS_STATUS_ASYNC_COMMIT)


def _one_string(connection):
    """Whether a statement may carry ``SET LOCAL`` in front of it in one query string.

    Only with psycopg2, whose cursor then reports the last statement's result (its row
    count, its ``RETURNING`` rows).  psycopg 3 positions its cursor on the first result,
    the ``SET``'s, and its server-side binding refuses two statements: there the setting
    goes in a transaction of its own (one more round trip).
    """
    return getattr(connection.Database, '__name__', '') == 'psycopg2'


def _prefixed(setting):
    def prefix(execute, sql, params, many, context):
        return execute(sql if many else f'{setting}; {sql}', params, many, context)
    return prefix


def _durably(operation, alias):
    """``operation`` with each of its statements on ``alias`` committed durably, without another round trip.

    ``SET LOCAL`` rides in front of each statement in the same query string: PostgreSQL runs
    such a string as one (implicit) transaction, so the setting holds for that statement's
    commit, or for the enclosing transaction's inside a block, and then lapses.  Where one
    string cannot carry both, the operation runs in a transaction that sets it first.
    """
    def durable(using):
        if using != alias:
            return operation(using)
        connection = connections[using]
        if _one_string(connection):
            with connection.execute_wrapper(_prefixed(_DURABLE)):
                return operation(using)
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                cursor.execute(_DURABLE)
            return operation(using)
    return durable


def publishing(alias):
    """
    The context a publish writes its rows in: on PostgreSQL, not waiting for the disk flush.

    Only when the publisher is in autocommit (its own statements are their own
    transactions) and ``USER_TASKS_STATUS_ASYNC_COMMIT`` is on; inside the caller's
    transaction nothing changes, its durability is the caller's.  A row lost to a crash
    of the database server within a fraction of a second of its publish is written again
    by the worker that runs the task (as for a publisher outside Django).
    """
    connection = connections[alias]
    if (connection.in_atomic_block or not _commits_asynchronously(connection)
            or not _one_string(connection)):
        return contextlib.nullcontext()
    return connection.execute_wrapper(_prefixed(_ASYNC_LOCAL))


def close():
    """Close this thread's status connections (worker process shutdown, green threads)."""
    for alias in list(getattr(_local, 'aliases', ())):
        try:
            connections[alias].close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not fail a shutdown
            LOG.debug('Closing %s failed', alias, exc_info=True)


def _open(base):
    """This thread's status connection for ``base``, registered under its own alias (created lazily)."""
    alias = base + SUFFIX
    aliases = _local.__dict__.setdefault('aliases', set())
    if alias in aliases:
        return alias
    source = connections[base]
    settings_dict = dict(source.settings_dict)
    settings_dict.update(AUTOCOMMIT=True, ATOMIC_REQUESTS=False, CONN_MAX_AGE=None)
    options = dict(settings_dict.get('OPTIONS') or {})
    options.pop('pool', None)  # a psycopg pool of the host's: this connection is one, kept
    settings_dict['OPTIONS'] = options
    wrapper = type(source)(settings_dict, alias)
    # Registered on the handler for this thread only, so ``using=alias`` works, but not in
    # ``DATABASES``: ``connections.all()`` (Celery's fix-up, close_old_connections) skips it.
    connections[alias] = wrapper
    aliases.add(alias)
    return alias


def _pinned(base, connection):
    pins = getattr(_local, 'pins', None)
    if not pins or base not in pins:
        return False
    if connection.in_atomic_block and connection.atomic_blocks and connection.atomic_blocks[0] is pins[base]:
        return True
    del pins[base]
    return False


def _pin(base):
    """Write statuses through ``base`` until its outermost atomic block ends (nothing to do outside one)."""
    connection = connections[base]
    if connection.in_atomic_block and connection.atomic_blocks:
        _local.__dict__.setdefault('pins', {})[base] = connection.atomic_blocks[0]


def _is_lock_timeout(exc):
    """Whether ``exc`` is a lock wait cut short (the SQLSTATE of psycopg2 or psycopg 3, or MySQL's code)."""
    cause = exc.__cause__ or exc
    # PyMySQL also has a ``sqlstate`` (HY000 for this error): every code the driver gives is read.
    first_argument = (getattr(cause, 'args', None) or [None])[0]
    codes = (getattr(cause, 'pgcode', None), getattr(cause, 'sqlstate', None), first_argument)
    return any(code in _LOCK_TIMEOUT_CODES for code in codes)


def _status_saved(sender, instance, created=False, using=None, **kwargs):  # noqa: ARG001
    """A status row updated by the task body inside its transaction is locked there: pin to that connection."""
    if not created and getattr(_local, 'active', False) and using and not using.endswith(SUFFIX):
        _pin_if_in_transaction(using, ('postgresql', 'mysql'))


def _artifact_saved(sender, instance, created=False, using=None, **kwargs):  # noqa: ARG001
    """
    An artifact inserted inside the body's transaction locks its status row on MySQL/MariaDB.

    InnoDB takes a shared lock on the referenced row; PostgreSQL's key-share lock does not
    conflict with an UPDATE that leaves the keys alone, so there the status stays separate.
    """
    if getattr(_local, 'active', False) and using and not using.endswith(SUFFIX):
        _pin_if_in_transaction(using, ('mysql',))


def _pin_if_in_transaction(using, vendors):
    connection = connections[using]
    if connection.vendor in vendors and connection.in_atomic_block:
        _pin(using)


def _configure_session(sender, connection, **kwargs):  # noqa: ARG001
    """Give a new status connection its lock timeout, and asynchronous commits where chosen (once per connection)."""
    if not connection.alias.endswith(SUFFIX):
        return
    statements = list(_SESSION.get(connection.vendor, ()))
    if _commits_asynchronously(connection):
        statements.append(_ASYNC_COMMIT)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _forget_after_fork():
    """In a forked child, drop the parent's status connections without closing them."""
    for alias in list(getattr(_local, 'aliases', ())):
        try:
            _abandoned.append(connections[alias])
            del connections[alias]
        except Exception:  # noqa: BLE001
            pass
    _local.aliases = set()
    _local.pins = {}
    _local.active = False


def _green():
    return threading.local.__module__.startswith(('gevent', 'eventlet'))


_GREEN = _green()


def connect_receivers():
    """Connect the receivers this module needs (idempotent; called when the app is ready)."""
    connection_created.connect(_configure_session, dispatch_uid='user_tasks.status_connection.session', weak=False)
    post_save.connect(_status_saved, sender='user_tasks.UserTaskStatus',
                      dispatch_uid='user_tasks.status_connection.status_saved', weak=False)
    post_save.connect(_artifact_saved, sender='user_tasks.UserTaskArtifact',
                      dispatch_uid='user_tasks.status_connection.artifact_saved', weak=False)


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_after_fork)

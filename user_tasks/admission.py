"""
Admitting a publish (OEP-3): identical concurrent tasks, per-user limits, arguments kept to retry.

A UserTask class opts in with any of three hooks (see ``UserTaskMixin``):

- ``concurrency_key(arguments_dict)``: a string naming what makes two invocations
  identical.  While a task of the same class, user and key is active (Pending, In
  Progress, Retrying or a custom stage), publishing another sends nothing and writes
  nothing; ``apply_async`` returns the active task's AsyncResult.  The database enforces
  it: ``concurrency_key`` is unique per (user, task class) and the transition that ends a
  row clears it in the same UPDATE, so two web processes publishing at the same instant
  start one task.
- ``max_active_per_user`` (or ``USER_TASKS_MAX_ACTIVE_PER_USER[task name]``): publishing
  one more active task of the class for a user raises ``TooManyActiveTasks`` before
  anything is written or sent.  Concurrent publishes for one user are serialised by
  locking the user's row (``SELECT ... FOR UPDATE``) in the transaction that counts and
  inserts; see ``docs/decisions/0011-oep3-admission.rst`` for why that is safe under
  PostgreSQL's READ COMMITTED and MariaDB's REPEATABLE READ.
- ``retryable = True``: the call's arguments are kept as JSON on the row (refused at
  publish when they are not JSON or larger than ``USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES``),
  so ``user_tasks.retrying`` can publish the task again.

Only standalone publishes are admitted this way: a task sent as a member of a group,
chain or chord, a chain's next step and a Celery retry of a running task are recorded as
before (the canvas, not its members, is what the user started).
"""
import hashlib
import json
import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections, router, transaction

from user_tasks import canvas, lifecycle
from user_tasks.conf import settings
from user_tasks.exceptions import ArgumentsNotStorable, TooManyActiveTasks
from user_tasks.models import UserTaskStatus

LOG = logging.getLogger(__name__)

#: Longest ``concurrency_key`` stored as given; longer keys are stored as a SHA-256 digest.
MAX_KEY_LENGTH = UserTaskStatus._meta.get_field('concurrency_key').max_length
#: ``reason`` label of the REJECTED event for a publish over the per-user limit.
LIMIT = 'limit'
#: ``reason`` label of the REJECTED event for a retryable publish whose arguments cannot be kept.
ARGUMENTS = 'arguments'
#: Apply options that make a publish part of a canvas or a re-publish of a running task.
_NOT_STANDALONE = ('group_id', 'chord', 'chain', 'link', 'parent_id', 'retries')
#: How often a duplicate key whose row ended meanwhile is tried again before giving up.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Admission:
    """What ``admit`` did: the row the publish is about, and whether this publish created it."""

    status: UserTaskStatus
    created: bool


def limit_of(task):
    """The per-user limit of ``task``'s class: the setting's entry for its name, else the class attribute."""
    configured = settings.USER_TASKS_MAX_ACTIVE_PER_USER or {}
    if task.name in configured:
        return configured[task.name]
    return getattr(task, 'max_active_per_user', None)


def is_admitted(task, options, keyed):
    """Whether a publish of ``task`` with these apply options goes through ``admit``.

    ``keyed`` says whether the task's class overrides ``concurrency_key``.
    """
    if any(options.get(option) for option in _NOT_STANDALONE):
        return False
    return keyed or getattr(task, 'retryable', False) or limit_of(task) is not None


def admit(task, args, kwargs, task_id, options, keyed):
    """
    Record the row of a standalone publish of ``task``, or find the identical active one.

    Returns None when the publish is not admitted here (no hook in use, or a canvas
    member), else an ``Admission``.  Raises ``TooManyActiveTasks`` or
    ``ArgumentsNotStorable`` (nothing written), or ``TypeError`` for a missing or
    unknown ``user_id``, as any publish.
    """
    if not is_admitted(task, options, keyed):
        return None
    status = canvas.describe(task, args, kwargs, task_id)
    key = None
    if keyed:
        key = _stored_key(task.concurrency_key(task.arguments_as_dict(*(args or ()), **(kwargs or {}))))
    status.concurrency_key = key
    if getattr(task, 'retryable', False):
        status.arguments = _storable(task, args, kwargs)
    limit = limit_of(task)
    alias = router.db_for_write(UserTaskStatus)
    for _ in range(_ATTEMPTS):
        admission = _admit_once(task, status, key, limit, alias)
        if admission is not None:
            return admission
    raise RuntimeError(f'Could not record {task.name} task {task_id}: its concurrency key kept changing hands')


def _admit_once(task, status, key, limit, alias):
    """One try: (lock, look, count and) insert; None when the key's owner ended between our insert and look."""
    connection = connections[alias]
    try:
        if limit is not None:
            # One transaction (a savepoint in the caller's): the user's lock is held until it ends.
            with transaction.atomic(using=alias):
                _lock_user(status.user_id, connection)
                existing = _active_with_key(status, key, connection) if key is not None else None
                if existing is not None:
                    return _duplicate(task, existing)
                if _active_count(task, status.user_id, limit, connection) >= limit:
                    lifecycle.announce_refused(UserTaskStatus, lifecycle.REJECTED, task=task.name, reason=LIMIT)
                    raise TooManyActiveTasks(task.name, limit)
                canvas.record_standalone(status)
        elif connection.in_atomic_block:
            _check_user(status.user_id)
            with transaction.atomic(using=alias):  # a savepoint: the unique key may refuse the insert
                canvas.record_standalone(status)
        else:
            canvas.record_standalone(status)  # one INSERT, as any publish in autocommit
    except IntegrityError as exc:
        existing = _active_with_key(status, key, connection) if key is not None else None
        if existing is not None:
            return _duplicate(task, existing)
        _check_user(status.user_id, cause=exc)
        if key is None:
            raise
        status.pk = None  # the active row ended between our insert and the lookup: again
        return None
    return Admission(status, True)


def _duplicate(task, existing):
    LOG.info('Not publishing %s for user %s: task %s with the same concurrency key is active',
             task.name, existing.user_id, existing.task_id)
    lifecycle.announce_refused(UserTaskStatus, lifecycle.DEDUPLICATED, status=existing, task=task.name)
    return Admission(existing, False)


def _stored_key(key):
    """The key as stored: None, the text, or a digest of a text too long for the column."""
    if key is None:
        return None
    key = str(key)
    # PostgreSQL cannot store a NUL character in a text column: such keys go in as digests too.
    if len(key) > MAX_KEY_LENGTH or '\x00' in key:
        return 'sha256:' + hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()
    return key


def _storable(task, args, kwargs):
    """The arguments as kept for a retry (what JSON gives back), or ArgumentsNotStorable."""
    try:
        text = json.dumps({'args': list(args or ()), 'kwargs': dict(kwargs or {})}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        lifecycle.announce_refused(UserTaskStatus, lifecycle.REJECTED, task=task.name, reason=ARGUMENTS)
        raise ArgumentsNotStorable(
            f'{task.name} is retryable, so its arguments must be JSON to be kept: {exc}') from exc
    if _has_nul(json.loads(text)):
        lifecycle.announce_refused(UserTaskStatus, lifecycle.REJECTED, task=task.name, reason=ARGUMENTS)
        raise ArgumentsNotStorable(
            f'{task.name} is retryable, so its arguments are kept, but they contain a NUL character, '
            'which PostgreSQL cannot store')
    bound = settings.USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES
    size = len(text.encode('utf-8'))
    if size > bound:
        lifecycle.announce_refused(UserTaskStatus, lifecycle.REJECTED, task=task.name, reason=ARGUMENTS)
        raise ArgumentsNotStorable(
            f'{task.name} is retryable, so its arguments are kept, but they take {size} bytes as JSON, '
            f'more than USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES ({bound})')
    return json.loads(text)


def _has_nul(value):
    """Whether a JSON value holds a NUL character in any string or key."""
    if isinstance(value, str):
        return '\x00' in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any('\x00' in key or _has_nul(item) for key, item in value.items())
    return False


def _check_user(user_id, cause=None):
    """
    Raise ``TypeError('Invalid user_id: ...')`` unless the user exists.

    Inside a transaction foreign keys are checked at commit: checked now, a bad user id
    fails this publish rather than the caller's whole transaction (as ``canvas.record_publish``).
    """
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise TypeError(f'Invalid user_id: {user_id}') from cause


def _lock_user(user_id, connection):
    """
    Lock the user's row until this transaction ends: concurrent limited publishes for one user queue here.

    ``FOR NO KEY UPDATE`` on PostgreSQL, so inserting rows that reference the user (their
    foreign key check takes ``FOR KEY SHARE``) and updating ``last_login`` do not wait.
    """
    users = get_user_model().objects.filter(pk=user_id)
    no_key = connection.features.has_select_for_no_key_update
    if not list(users.select_for_update(no_key=no_key).values_list('pk', flat=True)):
        raise TypeError(f'Invalid user_id: {user_id}')


def _read(queryset, connection):
    """
    The rows of ``queryset`` (a plain SELECT), read as a shared locking read on MySQL/MariaDB.

    InnoDB's REPEATABLE READ answers plain SELECTs from the transaction's snapshot, which
    predates our lock when the caller's transaction read anything before publishing; a
    locking read sees the latest committed rows.  Shared (``LOCK IN SHARE MODE``), not
    ``FOR UPDATE``: a refused duplicate insert already holds a shared lock on the row it
    collided with, and two of them upgrading to exclusive locks would deadlock.
    PostgreSQL's READ COMMITTED takes a new snapshot per statement, after our lock was
    granted, and in autocommit every statement reads the latest committed rows.
    """
    if connection.vendor != 'mysql' or not connection.in_atomic_block:
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    return list(queryset.model.objects.raw(f'{sql} LOCK IN SHARE MODE', params, using=connection.alias))


def _active_with_key(status, key, connection):
    """The active row of the same user, class and key (a row's key is cleared when it ends)."""
    rows = UserTaskStatus.objects.filter(user_id=status.user_id, task_class=status.task_class, concurrency_key=key)
    found = _read(rows.order_by('pk')[:1], connection)
    return found[0] if found else None


def _active_count(task, user_id, limit, connection):
    """How many of the user's tasks of this class are active, counted up to ``limit``."""
    if limit <= 0:
        return 0
    rows = (UserTaskStatus.objects.filter(user_id=user_id, task_class=task.name, is_container=False)
            .exclude(state__in=UserTaskStatus.FINAL_STATES))
    return len(_read(rows.only('pk')[:limit], connection))

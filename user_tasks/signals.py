"""
Celery signal receivers: each turns one Celery event into a transition on the status row.

``celery_app``, ``transaction`` and ``close_old_connections`` are module attributes
looked up at call time, so tests and hosts can replace them.  ``celery_app`` is
``user_tasks.control.celery_app`` under another name (assigning either changes both),
because the model revokes and terminates through ``user_tasks.control``.

Layer: Celery, the top of the core.  Imports ``tasks``, the operations, the domain, the
hub and the leaves; never ``user_tasks.metrics`` (observers hang off the lifecycle).
"""
import logging
import sys
import types

from billiard.exceptions import WorkerLostError
from celery import current_app
from celery.exceptions import TimeLimitExceeded
from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.db import InterfaceError, OperationalError, close_old_connections, connections, router, transaction

from user_tasks import (
    canvas,
    commit,
    control,
    recovery,
    status_connection,
    tasks,  # noqa: F401  registers the periodic and termination tasks in every process
    user_task_stopped,  # noqa: F401  re-exported: Studio imports it from here
)
from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskStatus
from user_tasks.utils import is_user_task

LOG = logging.getLogger(__name__)

__all__ = [
    'create_user_task', 'retrying_task', 'start_user_task', 'task_failed', 'task_succeeded', 'task_was_revoked',
    'user_task_stopped',
]


class _SignalsModule(types.ModuleType):
    """This module, with ``celery_app`` an alias of ``user_tasks.control.celery_app``."""

    @property
    def celery_app(self):
        """The Celery app the receivers and the model's revokes use (``celery.current_app``)."""
        return control.celery_app

    @celery_app.setter
    def celery_app(self, value):
        control.celery_app = value

    @celery_app.deleter
    def celery_app(self):
        control.celery_app = current_app


sys.modules[__name__].__class__ = _SignalsModule


def _user_task(task):
    return task if is_user_task(task) else None


def _registered(name):
    """
    The task registered under ``name``, from Celery's current app (then from ``celery_app``).

    Not from ``celery_app`` first: a test patches that attribute (to watch revokes) with a
    mock, whose registry would hide every task and stop every publish from being recorded.
    """
    task = current_app.tasks.get(name)
    if task is None:
        registry = getattr(control.celery_app, 'tasks', None)
        task = registry.get(name) if isinstance(registry, dict) else None
    return task


def create_user_task(sender=None, body=None, headers=None, routing_key=None, **kwargs):
    """Record a UserTask when its message is published (``before_task_publish``)."""
    task = _user_task(_registered(sender)) if sender else None
    if task is None:
        return
    if isinstance(body, (tuple, list)):
        message = canvas.message_from_proto2(body, headers or {})  # protocol 2: (args, kwargs, embed)
    else:
        message = body  # protocol 1: the body is the message
    try:
        canvas.record_publish(task, message, queue=routing_key)
    except TypeError as exc:
        LOG.error('Not recording user task %s (%s): %s', message.get('id'), sender, exc)
        raise


def start_user_task(sender=None, task_id=None, task=None, **kwargs):
    """Mark the task In Progress as a worker starts it (``task_prerun``)."""
    task = _user_task(task or sender)
    if task is None:
        return
    request = task.request
    if getattr(request, 'is_eager', False):
        # Until ``task_postrun``: this run's events are delivered at once (user_tasks.commit).
        commit.eager_run_started()
        request.user_task_eager_run = True
    else:
        status_connection.activate()  # until ``task_postrun``: see user_tasks.status_connection
    _close_stale_connections()
    status = UserTaskStatus.start_task(request.id, attempt=_attempt(request)) if request.id else None
    if status is not None:
        request.user_task_status = status  # what ``task.status`` returns from now on
        return
    status = task.status
    try:
        if not status.start(attempt=_attempt(task.request)) and status.state in UserTaskStatus.FINAL_STATES:
            task.request.user_task_skip = f'its status is already {status.state}'
    except TaskCanceledException:
        task.request.user_task_skip = 'it was canceled before it started'


def _close_stale_connections():
    """
    Close connections the database may have dropped ("MySQL server has gone away"), as 4.0 does.

    Never inside an atomic block (that would end the caller's transaction), and not when the
    connection cannot even be looked up: the task then runs and reports its own error.
    """
    try:
        connection = transaction.get_connection(router.db_for_write(UserTaskStatus))
    except Exception as exc:  # noqa: BLE001  any failure to reach the connection: let the task report it
        LOG.warning('Not closing stale database connections: %r', exc)
        return
    if not connection.in_atomic_block:
        close_old_connections()


def _attempt(request):
    """The 1-based number of the attempt a worker request runs (None when the request does not say)."""
    retries = getattr(request, 'retries', None)
    return retries + 1 if isinstance(retries, int) else None


def retrying_task(sender=None, request=None, reason=None, **kwargs):
    """Count another attempt when the task asks Celery to retry it (``task_retry``)."""
    task = _user_task(sender)
    if task is not None:
        # ``reason`` is Celery's Retry; what the task retries for is the exception it wraps.
        cause = getattr(reason, 'exc', None) or reason
        task.status.retry(attempt=_attempt(request if request is not None else task.request), exception=cause)


def _status_for(task, task_id):
    """The row of ``task_id``: the running invocation's cached row, else read by id.

    A worker's main process reports lost children and hard time limits without the
    task's request, so the id from the signal is what finds the row.
    """
    request = task.request
    if task_id is None or getattr(request, 'id', None) == task_id:
        return task.status
    return UserTaskStatus.objects.filter(task_id=task_id).first()


def _failure_message(exception):
    """The text stored in the Error artifact: the exception's, or a user-safe one for a lost worker."""
    if isinstance(exception, WorkerLostError):
        return str(recovery.WORKER_LOST_MESSAGE)
    if isinstance(exception, TimeLimitExceeded):
        return str(recovery.TIME_LIMIT_MESSAGE)
    return str(exception)


def _reconnecting(receiver):
    """
    Retry a receiver once on a fresh connection when its database connection was lost.

    ``task_failure`` (lost child, hard time limit) and ``task_revoked`` run in the worker's
    main process, whose connection can be broken by then: a pool child forked while it was
    open closes it on the server as it starts (seen with PyMySQL).  Transitions are
    conditional UPDATEs, so running one again is harmless.
    """
    def wrapper(*args, **kwargs):
        alias = router.db_for_write(UserTaskStatus)
        try:
            return receiver(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if transaction.get_connection(alias).in_atomic_block:
                raise
            LOG.warning('Database connection lost in %s (%r): retrying once on a new one', receiver.__name__, exc)
            connections[alias].close()
            return receiver(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = receiver.__name__, receiver.__doc__, receiver
    return wrapper


@_reconnecting
def task_failed(sender=None, task_id=None, exception=None, **kwargs):
    """End the task Failed with the exception's text (``task_failure``); a cancellation just stops it."""
    task = _user_task(sender)
    if task is None:
        return
    status = _status_for(task, task_id)
    if status is None:
        return
    if isinstance(exception, TaskCanceledException) or not status.fail(_failure_message(exception), exception):
        status.mark_stopped()


@_reconnecting
def task_was_revoked(sender=None, request=None, terminated=False, expired=False, **kwargs):
    """End a revoked task Canceled, and an expired one Failed (``task_revoked``)."""
    task = _user_task(sender)
    task_id = getattr(request, 'id', None)
    if task is None or task_id is None:
        return
    status = UserTaskStatus.objects.filter(task_id=task_id).first()
    if status is None:
        return
    if expired:
        if not status.fail(str(recovery.EXPIRED_MESSAGE)):
            status.mark_stopped()
    elif not status.cancel() or terminated:
        # A terminated task has stopped: a running row that cancel() just moved is ended now.
        status.mark_stopped()


def task_succeeded(sender=None, **kwargs):
    """End the task Succeeded unless it was canceled, failed or is retrying (``task_success``)."""
    task = _user_task(sender)
    if task is None:
        return
    status = task.status
    if not status.succeed():
        status.mark_stopped()


def task_ended(sender=None, task=None, **kwargs):
    """Status writes go back to the model's own connection once a task has ended (``task_postrun``).

    An eager run's events wait for the caller's commit again (``user_tasks.commit``).
    """
    status_connection.deactivate()
    request = getattr(task or sender, 'request', None)
    if getattr(request, 'user_task_eager_run', False):
        request.user_task_eager_run = False
        commit.eager_run_ended()


def _close_status_connection(**kwargs):
    """A pool child exits: close its status connection (``worker_process_shutdown``)."""
    status_connection.close()


def _start_after_django_fixup(**kwargs):
    """
    Move ``start_user_task`` behind Celery's Django fixup in ``task_prerun`` (``worker_init``).

    The fixup, installed at ``worker_init`` after Django connected our receivers, closes the
    database connections before and after every task.  Run before it, the start would open
    a connection the fixup closes at once, and the success would open a second one: two
    connections per task instead of one, the largest cost of a short task.
    """
    task_prerun.disconnect(dispatch_uid='user_tasks.start_user_task')
    task_prerun.connect(start_user_task, dispatch_uid='user_tasks.start_user_task', weak=False)


def connect_receivers():
    """Connect the receivers to Celery's signals (idempotent)."""
    before_task_publish.connect(create_user_task, dispatch_uid='user_tasks.create_user_task', weak=False)
    task_prerun.connect(start_user_task, dispatch_uid='user_tasks.start_user_task', weak=False)
    worker_init.connect(_start_after_django_fixup, dispatch_uid='user_tasks.start_after_django_fixup', weak=False)
    task_retry.connect(retrying_task, dispatch_uid='user_tasks.retrying_task', weak=False)
    task_failure.connect(task_failed, dispatch_uid='user_tasks.task_failed', weak=False)
    task_success.connect(task_succeeded, dispatch_uid='user_tasks.task_succeeded', weak=False)
    task_postrun.connect(task_ended, dispatch_uid='user_tasks.task_ended', weak=False)
    worker_process_shutdown.connect(_close_status_connection, dispatch_uid='user_tasks.close_status_connection',
                                    weak=False)
    status_connection.connect_receivers()
    task_revoked.connect(task_was_revoked, dispatch_uid='user_tasks.task_was_revoked', weak=False)
    worker_ready.connect(recovery.start_heartbeat, dispatch_uid='user_tasks.start_heartbeat', weak=False)
    worker_shutdown.connect(recovery.stop_heartbeat, dispatch_uid='user_tasks.stop_heartbeat', weak=False)

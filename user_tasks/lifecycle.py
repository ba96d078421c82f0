"""
Lifecycle events: how a state change tells the rest of the system about itself.

This is the hub of user_tasks (docs/decisions/0006-lifecycle-events-and-observers.rst).
It imports only Django and the leaves (``user_tasks`` itself for the public signal,
``user_tasks.commit``).  The model's transitions call ``announce``/``announce_stopped``
and ``announce_purged``; the events are delivered after the surrounding transaction
commits (at once in autocommit mode and under Django's ``TestCase``: see
``user_tasks.commit``), so observers never see a change that is later rolled back.
The exception is an eager run (``task_always_eager``): its events are delivered at once,
as 4.0's Celery receivers sent ``user_task_stopped``, even inside the caller's transaction.
Observers (the public ``user_task_stopped`` signal, metrics, tracing, a host's own
receiver) connect to ``event`` and ``purged``; a change of state never has to know
who is listening.

Three pieces of work are also offered to observers to *wrap* (a span around them,
say): ``SUBMIT`` (writing the rows of a publish), ``EXECUTE`` (running a task body)
and ``CANCEL`` (``UserTaskStatus.cancel``).  The code doing the work calls
``around(kind, subject, work, ...)``; an observer registers a wrapper with
``register_around``.  With nothing registered ``around`` is one dict lookup and a
direct call.

Each event carries what its observers need, so none of them keeps side state or
depends on the order receivers were connected in:

================  ==========================================================================
kind              details (keyword arguments of ``event``, besides ``status`` and ``kind``)
================  ==========================================================================
``SUBMITTED``     ``queue``: the routing key of the message, when the publisher knows it
``STARTED``       ``previous_state``: ``Pending`` or ``Retrying``
``PROGRESS``      ``steps``: how many steps were just completed
``RETRIED``       ``exception``: why the attempt asked to be retried (or None)
``CANCELED``      (none) a running task was marked Canceled; it stops at its next check
``STOPPED``       ``exception``: what ended a Failed row, when known (else None)
``RECOVERED``     ``reason``: ``stale`` or ``pending_timeout``
``DEDUPLICATED``  ``task``: a publish sent nothing; ``status`` is the identical active row
``REJECTED``      ``task``, ``reason`` (``limit`` or ``arguments``): a publish was refused
                  before anything was written; ``status`` is None
================  ==========================================================================

``DEDUPLICATED`` and ``REJECTED`` (``user_tasks.admission``) are delivered at once by
``announce_refused``: nothing was written, so there is no commit to wait for.
"""
import logging
from functools import partial

from django.dispatch import Signal

from user_tasks import status_connection, user_task_stopped
from user_tasks.commit import after_commit

LOG = logging.getLogger(__name__)

SUBMITTED = 'submitted'
STARTED = 'started'
PROGRESS = 'progress'
RETRIED = 'retried'
CANCELED = 'canceled'
STOPPED = 'stopped'
RECOVERED = 'recovered'
#: A publish that sent nothing: an identical task was active (``status`` is that task's row).
DEDUPLICATED = 'deduplicated'
#: A publish refused before anything was written (``status`` is None; ``task`` and ``reason`` say which).
REJECTED = 'rejected'

#: Work observers may wrap (see ``around``).
SUBMIT = 'submit'
EXECUTE = 'execute'
CANCEL = 'cancel'

#: Sent with ``sender=UserTaskStatus, status=<row>, kind=<one of the names above>`` plus details.
event = Signal()
#: Sent with ``sender=UserTaskStatus, counts={'status': n, 'artifact': n, 'file': n}`` after a purge.
purged = Signal()

#: kind -> the registered wrappers, outermost first (a tuple: read without a lock on the hot path).
_wrappers = {SUBMIT: (), EXECUTE: (), CANCEL: ()}


def _on_commit(status, callback):
    # The connection the change was written through: in a worker, the status connection,
    # which commits at once even while the task body holds a transaction open.  During an
    # eager run the events are delivered at once, as 4.0's receivers sent them (ADR 0007).
    after_commit(callback, using=status_connection.alias_for(type(status)), eager_at_once=True)


def announce(status, kind, **details):
    """
    Deliver a lifecycle event for ``status`` after commit, if anyone listens.

    Arguments:
        status (UserTaskStatus): the row that changed (the instance, as the transition left it).
        kind (str): one of ``SUBMITTED``, ``STARTED``, ``PROGRESS``, ``RETRIED``, ``CANCELED``,
            ``RECOVERED`` (``STOPPED`` goes through ``announce_stopped``).
        **details: the kind's details (see the module docstring).

    Example::

        lifecycle.announce(status, lifecycle.PROGRESS, steps=1)
    """
    if not event.has_listeners():
        return
    _on_commit(status, lambda: _send(status, kind, details))


def announce_refused(sender, kind, status=None, **details):
    """
    Deliver at once an event about a publish that wrote nothing (``DEDUPLICATED``, ``REJECTED``).

    There is no change to wait for: the caller's transaction may still roll back, but the
    publish was refused (or answered with the active task) either way.

    Arguments:
        sender (type): ``UserTaskStatus`` (there may be no row to take it from).
        kind (str): ``DEDUPLICATED`` or ``REJECTED``.
        status (UserTaskStatus or None): the active identical row (``DEDUPLICATED``), else None.
        **details: ``task`` (the registered task name), and ``reason`` for ``REJECTED``.

    Example::

        lifecycle.announce_refused(UserTaskStatus, lifecycle.REJECTED, task=task.name, reason='limit')
    """
    if event.has_listeners():
        _send(status, kind, details, sender=sender)


def announce_stopped(status, exception=None):
    """
    Deliver the final event for ``status``, and ``user_task_stopped``, once, after commit.

    Arguments:
        status (UserTaskStatus): a row that has just become final and whose work has stopped.
        exception (BaseException or None): what ended a Failed row, when known.
    """
    def send():
        _send(status, STOPPED, {'exception': exception})
        for receiver, response in user_task_stopped.send_robust(sender=type(status), status=status):
            if isinstance(response, Exception):
                LOG.error('user_task_stopped receiver %r failed for task %s: %r', receiver, status.task_id, response)
    _on_commit(status, send)


def announce_purged(model, counts):
    """
    Tell observers what a purge deleted (sent at once: the purge commits each batch itself).

    Arguments:
        model (type): ``UserTaskStatus``, the sender.
        counts (dict): ``{'status': n, 'artifact': n, 'file': n}``.
    """
    for receiver, response in purged.send_robust(sender=model, counts=counts):
        if isinstance(response, Exception):
            LOG.warning('user_tasks purge observer %r failed: %r', receiver, response)


def _send(status, kind, details, sender=None):
    sender = type(status) if sender is None else sender
    for receiver, response in event.send_robust(sender=sender, status=status, kind=kind, **details):
        if isinstance(response, Exception):
            LOG.warning('user_tasks lifecycle observer %r failed on %s: %r', receiver, kind, response)


# -- work observers wrap ----------------------------------------------------------------


def register_around(kind, wrapper):
    """
    Wrap every future piece of work of ``kind`` in ``wrapper`` (idempotent).

    Arguments:
        kind (str): ``SUBMIT``, ``EXECUTE`` or ``CANCEL``.
        wrapper (callable): called as ``wrapper(subject, proceed)``; it must call
            ``proceed()`` exactly once and return (or raise) what that returns (or raises).
            ``subject`` is the unsaved ``UserTaskStatus`` being recorded (``SUBMIT``), the
            running Celery task (``EXECUTE``) or the ``UserTaskStatus`` being canceled
            (``CANCEL``).

    Raises:
        KeyError: for an unknown ``kind``.

    Example::

        def timed(subject, proceed):
            started = time.monotonic()
            try:
                return proceed()
            finally:
                LOG.info('%s took %.3f s', subject, time.monotonic() - started)

        lifecycle.register_around(lifecycle.CANCEL, timed)
    """
    if wrapper not in _wrappers[kind]:
        _wrappers[kind] = (*_wrappers[kind], wrapper)


def unregister_around(kind, wrapper):
    """Stop wrapping work of ``kind`` in ``wrapper`` (no error when it was not registered)."""
    _wrappers[kind] = tuple(registered for registered in _wrappers[kind] if registered != wrapper)


def around(kind, subject, work, *args, **kwargs):
    """
    Run ``work(*args, **kwargs)`` inside the wrappers registered for ``kind``; return its result.

    Arguments:
        kind (str): ``SUBMIT``, ``EXECUTE`` or ``CANCEL``.
        subject: what the wrappers are told the work is about (see ``register_around``).
        work (callable): the work itself.

    Returns:
        Whatever ``work`` returns; its exceptions propagate unchanged.
    """
    wrappers = _wrappers[kind]
    if not wrappers:
        return work(*args, **kwargs)
    proceed = partial(work, *args, **kwargs)
    for wrapper in reversed(wrappers):
        proceed = partial(wrapper, subject, proceed)
    return proceed()

"""
When is work "after commit"?  The one place user_tasks decides whether to defer.

Lifecycle events, ``user_task_stopped``, publish-on-commit messages and scheduled
terminations wait for the surrounding transaction to commit, and happen at once in
autocommit mode.  Django's ``TestCase`` (and pytest-django's ``django_db``) wraps every
test in atomic blocks that are rolled back, never committed; deferring to them would mean
never.  Django marks those blocks (``Atomic._from_testcase``, the mark that
``atomic(durable=True)`` consults), so here they count as autocommit: a host's test suite
sees what production sees outside a transaction.  An atomic block opened by the code under
test is a real transaction, and work inside it still waits for its commit.

The library's own short blocks (``atomic`` below, e.g. a failure and its Error artifact)
are not the caller's transaction: work deferred inside one is held until the block ends,
then follows the rule above, so under ``TestCase`` it is not lost in a savepoint that
Django never reports as committed.

An eager run (``task_always_eager``, ``Task.apply``) is reported as 4.0 reported it, from
the Celery receivers at once: while one runs in this thread (``eager_run_started`` at
``task_prerun``, ``eager_run_ended`` at ``task_postrun``), work deferred with
``eager_at_once=True`` (the lifecycle events, ``user_task_stopped``) does not wait for the
caller's transaction, e.g. a view's under ``ATOMIC_REQUESTS`` in a ``TestCase`` that never
commits.  It still waits for the end of a library block around it.

Layer: leaf.  Imports only Django.
"""
import threading
from contextlib import contextmanager

from django.db import transaction

__all__ = ['after_commit', 'atomic', 'eager_run_ended', 'eager_run_started', 'in_eager_run', 'in_transaction']

_local = threading.local()


def in_transaction(using=None):
    """Whether the connection is inside an atomic block that ``TestCase`` did not open."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return False
    return any(not getattr(block, '_from_testcase', False) for block in connection.atomic_blocks)


def after_commit(callback, using=None, eager_at_once=False):
    """
    Run ``callback`` when the current transaction commits, or now when there is none (see above).

    ``eager_at_once``: during an eager run, run it now even inside the caller's transaction.
    """
    held = getattr(_local, 'held', None)
    if held:
        held[-1].append((callback, using, eager_at_once))
    elif in_transaction(using) and not (eager_at_once and in_eager_run()):
        transaction.on_commit(callback, using=using)
    else:
        callback()


def eager_run_started():
    """A task starts running eagerly in this thread (``task_prerun`` of an eager request); runs nest."""
    _local.eager_runs = getattr(_local, 'eager_runs', 0) + 1


def eager_run_ended():
    """The innermost eager run of this thread has ended (its ``task_postrun``)."""
    _local.eager_runs = max(0, getattr(_local, 'eager_runs', 0) - 1)


def in_eager_run():
    """Whether a task is running eagerly in this thread."""
    return getattr(_local, 'eager_runs', 0) > 0


@contextmanager
def atomic(using=None):
    """``transaction.atomic`` for the library's own blocks; deferred work follows ``after_commit`` once it ends."""
    if not hasattr(_local, 'held'):
        _local.held = []
    callbacks = []
    _local.held.append(callbacks)
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        _local.held.pop()
    # Not reached when the block raised: its work was rolled back, and so is what it deferred.
    for callback, callback_using, eager_at_once in callbacks:
        after_commit(callback, callback_using, eager_at_once)

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

Layer: leaf.  Imports only Django.
"""
import threading
from contextlib import contextmanager

from django.db import transaction

__all__ = ['after_commit', 'atomic', 'in_transaction']

_local = threading.local()


def in_transaction(using=None):
    """Whether the connection is inside an atomic block that ``TestCase`` did not open."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return False
    return any(not getattr(block, '_from_testcase', False) for block in connection.atomic_blocks)


def after_commit(callback, using=None):
    """Run ``callback`` when the current transaction commits, or now when there is none (see above)."""
    held = getattr(_local, 'held', None)
    if held:
        held[-1].append((callback, using))
    elif in_transaction(using):
        transaction.on_commit(callback, using=using)
    else:
        callback()


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
    for callback, callback_using in callbacks:
        after_commit(callback, callback_using)

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
"""
from django.db import transaction

__all__ = ['after_commit', 'in_transaction']


def in_transaction(using=None):
    """Whether the connection is inside an atomic block that ``TestCase`` did not open."""
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return False
    return any(not getattr(block, '_from_testcase', False) for block in connection.atomic_blocks)


def after_commit(callback, using=None):
    """Run ``callback`` when the current transaction commits, or now when there is none (see above)."""
    if in_transaction(using):
        transaction.on_commit(callback, using=using)
    else:
        callback()

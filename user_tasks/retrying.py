"""
Trying a failed or canceled task again (OEP-3 "Try again").

A task whose class sets ``retryable = True`` keeps the arguments of its call on its row
(``user_tasks.admission``).  ``retry(status)`` publishes the same task with the same
arguments, hence the same user, as a new row, subject to the task's concurrency key and
per-user limit like any publish; the old row stays and links to the new one
(``retried_as``).  A row is tried again at most once: the link is written by a
conditional UPDATE in the transaction that locked the row and recorded the new task, and
the message is only sent once that transaction commits.  When the broker refuses it, the
new row and the link go again, so the old row can still be tried again (``RetryNotSent``).

The REST route ``tasks/<uuid>/retry/`` and the task page's "Try again" button call it;
both ask the ``user_tasks.retry_usertaskstatus`` object permission first.
"""
import logging

from celery import current_app
from celery.utils import uuid
from django.db import router
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as BrokerUnreachable

from user_tasks import commit
from user_tasks.exceptions import RetryNotSent, RetryRefused
from user_tasks.models import UserTaskStatus
from user_tasks.tasks import UserTaskMixin

LOG = logging.getLogger(__name__)
#: What a publish raises when the broker cannot take the message: only these become a 503
#: (``RetryNotSent``); any other error (a bad user, the database, an eager body's own
#: exception) is raised as it is.
_BROKER_ERRORS = (BrokerUnreachable, ConnectionError, OSError)

#: States a task can be tried again from.
RETRYABLE_STATES = (UserTaskStatus.FAILED, UserTaskStatus.CANCELED)


def _task_of(status):
    """The registered retryable UserTask of ``status``, or None."""
    if status.is_container or status.parent_id is not None:
        return None
    task = current_app.tasks.get(status.task_class)
    if not isinstance(task, UserTaskMixin) or not getattr(task, 'retryable', False):
        return None
    return task


def check(status):
    """Return the task to publish again for ``status``, or raise ``RetryRefused`` saying why not."""
    task = _task_of(status)
    if task is None:
        raise RetryRefused('not_retryable', _('This task cannot be tried again.'))
    if status.state not in UserTaskStatus.FINAL_STATES:
        raise RetryRefused('not_ended', _('This task has not ended yet; it can be tried again once it has.'))
    if status.state == UserTaskStatus.SUCCEEDED:
        raise RetryRefused('succeeded', _('This task succeeded; only a failed or canceled task can be tried again.'))
    if status.retried_as is not None:
        raise RetryRefused('already_retried', _('This task has already been tried again.'))
    if not isinstance(status.arguments, dict):
        raise RetryRefused('not_retryable', _('This task cannot be tried again: its arguments were not kept.'))
    return task


def can_retry(status):
    """Whether ``check(status)`` passes (for showing a "Try again" button)."""
    try:
        check(status)
    except RetryRefused:
        return False
    return True


def retry(status):
    """
    Publish the task of a Failed or Canceled ``status`` again; return ``(new status, created)``.

    ``created`` is False when an identical task was already active (its concurrency key):
    the old row then links to that task.  Raises ``RetryRefused``, ``TooManyActiveTasks``
    (nothing written, nothing sent), ``ArgumentsNotStorable`` or ``RetryNotSent`` (the broker
    refused the message: the new row is gone and the old one can be tried again).

    Inside the caller's own transaction (``ATOMIC_REQUESTS``) the message is sent when that
    transaction commits, so a refusal raises there instead; the new row and the link go all
    the same (``user_tasks.canvas.forget_unsent``).
    """
    alias = router.db_for_write(UserTaskStatus)
    linked = False
    try:
        with commit.atomic(using=alias):  # the publish waits for it (and for the caller's commit)
            # Locked until the new row is linked: a second, concurrent "Try again" waits, then sees the link.
            locked = UserTaskStatus.objects.select_for_update().get(pk=status.pk)
            task = check(locked)
            task_id = uuid()
            arguments = locked.arguments
            try:
                result = task.apply_async(args=arguments.get('args') or (), kwargs=arguments.get('kwargs') or {},
                                          task_id=task_id)
            except _BROKER_ERRORS as exc:  # sent at once (USER_TASKS_PUBLISH_ON_COMMIT off) and refused
                raise _not_sent(status, exc) from exc
            new = UserTaskStatus.objects.get(task_id=result.id)
            UserTaskStatus.objects.filter(Q(pk=locked.pk) & Q(retried_as__isnull=True)).update(
                retried_as=new.uuid, modified=timezone.now())
            linked = True
    except _BROKER_ERRORS as exc:
        if not linked:
            raise
        # The block committed, then the message sent on its commit was refused: the new row
        # and the link were removed with it (``UserTaskMixin.apply_async``).
        raise _not_sent(status, exc) from exc
    status.retried_as = new.uuid
    return new, result.id == task_id


def _not_sent(status, exc):
    """The ``RetryNotSent`` for a retry of ``status`` whose message ``exc`` refused, logged for operators."""
    LOG.warning('Could not send the retry of user task %s (%s): %r', status.uuid, status.task_class, exc)
    return RetryNotSent(_('The task could not be started right now (the task queue is unreachable). '
                          'Try again in a moment.'))


def retried_as(status):
    """The row that tried ``status`` again, or None (none yet, or purged since)."""
    if status.retried_as is None:
        return None
    return UserTaskStatus.objects.filter(uuid=status.retried_as).first()

"""
Deleting a task: cancel what has not ended, then remove the rows (REST DELETE, admin).

A row deleted while its task runs would leave the work going with nothing to report to,
so a delete goes through the same path as a cancel first: waiting tasks are revoked,
running ones stop at their next progress call (the worker treats a missing row as
canceled) and, for classes in ``USER_TASKS_TERMINATE_AFTER``, are terminated after their
grace period.  The artifact files go once the delete commits (``user_tasks.files``).

Layer: operations.  Imports the domain, the hub (``control``) and the leaves.
"""
from django.db import router
from django.db.models import Q

from user_tasks import commit, control
from user_tasks.conf import settings
from user_tasks.models import UserTaskStatus


def _running_below(status):
    """(task id, task class) of the unfinished, non-waiting tasks in ``status`` and its subtree."""
    tree = Q(pk=status.pk) | Q(parent_id=status.pk) | Q(parent__parent_id=status.pk)
    return list(UserTaskStatus.objects.filter(tree, is_container=False, finished__isnull=True)
                .exclude(state__in=UserTaskStatus.WAITING_STATES)
                .values_list('task_id', 'task_class'))


def _terminate_later(running):
    """Once the delete commits, terminate the deleted tasks whose class opted in, after their grace."""
    grace_by_class = settings.USER_TASKS_TERMINATE_AFTER or {}
    for task_id, task_class in running:
        grace = grace_by_class.get(task_class)
        if grace is not None:
            control.schedule_termination(task_id, grace, using=router.db_for_write(UserTaskStatus), deleted=True)


def cancel_and_delete(status):
    """Cancel ``status`` (and its children) unless it has ended, then delete it with its subtree."""
    with commit.atomic(using=router.db_for_write(UserTaskStatus)):
        running = _running_below(status)
        if status.state not in UserTaskStatus.FINAL_STATES or status.is_container:
            status.cancel()
        status.delete()
        _terminate_later(running)

"""Extra tasks for the unit tests (imported at collection, so the in-process worker knows them)."""
from celery import shared_task

from user_tasks.tasks import UserTask


@shared_task(base=UserTask, bind=True)
def default_task(self, user_id, **kwargs):
    """Default name and steps: the function's name and 1."""
    return sorted(kwargs)


@shared_task(base=UserTask, bind=True)
def kwargs_task(self, user_id, **kwargs):
    """Returns the keyword arguments it received."""
    return kwargs


@shared_task(base=UserTask, bind=True)
def strict_task(self, user_id, label='strict'):
    """Cannot take ``user_task_name``: it must be stripped."""
    return label


@shared_task(base=UserTask, bind=True)
def canceling_task(self, user_id, **kwargs):
    """Cancels its own row, then reports progress, so it stops with TaskCanceledException."""
    type(self.status).objects.get(pk=self.status.pk).cancel()
    self.status.increment_completed_steps()
    return 'not reached'


@shared_task(base=UserTask, bind=True)
def loose_task(self, *args, **kwargs):
    """Takes anything, so Celery's own argument check cannot catch a missing ``user_id``."""
    return len(args)

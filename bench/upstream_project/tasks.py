"""The no-op user task, tracked by upstream 4.0: the same body as ``tests.tasks.noop_task``."""
from celery import shared_task

from user_tasks.tasks import UserTask


@shared_task(base=UserTask, bind=True)
def noop_task(self, user_id, **kwargs):  # noqa: ARG001
    """Do nothing: the cheapest user task."""
    return None

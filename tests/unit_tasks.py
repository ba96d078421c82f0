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


class HostHookTask(UserTask):
    """A host's hooks that read ``user_id`` themselves, as Studio's export task does."""

    abstract = True
    hook_calls = []

    @classmethod
    def generate_name(cls, arguments_dict):
        cls.hook_calls.append('generate_name')
        return f"Export for {arguments_dict['user_id']}"

    @staticmethod
    def calculate_total_steps(arguments_dict):
        HostHookTask.hook_calls.append('calculate_total_steps')
        return 1


@shared_task(base=HostHookTask, bind=True, typing=False)
def host_hook_task(self, user_id, course='c'):
    """Celery does not check its arguments (``typing=False``), so a missing user_id reaches the receiver."""
    return 'ran'


class ParkedRetryableTask(UserTask):
    """Retryable, and routed to a queue no worker consumes: its rows stay as the test leaves them."""

    retryable = True


@shared_task(base=ParkedRetryableTask, bind=True, queue='user_tasks_unit_unconsumed')
def parked_task(self, user_id, label='parked', **kwargs):
    """Never run: a retry of it stays Pending even while the in-process worker runs."""
    return label

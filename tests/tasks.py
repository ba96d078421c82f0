"""Sample tasks used by the unit and integration tests (and the worker they start)."""
import functools
import os
import time

from celery import shared_task

from user_tasks import stages
from user_tasks.models import UserTaskArtifact
from user_tasks.tasks import UserTask


class SampleTask(UserTask):
    """Counts its steps from ``steps`` and names itself after ``label``."""

    @staticmethod
    def calculate_total_steps(arguments_dict):
        return arguments_dict.get('steps', 1)

    @classmethod
    def generate_name(cls, arguments_dict):
        return f"Sample {arguments_dict.get('label', 'task')}"


@shared_task(base=SampleTask, bind=True)
def sample_task(self, user_id, label='task', steps=1, **kwargs):
    """Complete ``steps`` steps and write an Output artifact."""
    for _ in range(steps):
        self.status.increment_completed_steps()
    UserTaskArtifact.objects.create(status=self.status, text=f'done {label}')
    return label


@shared_task(base=SampleTask, bind=True)
def noop_task(self, user_id, **kwargs):
    """Do nothing: the cheapest user task."""
    return None


@shared_task(base=SampleTask, bind=True)
def failing_task(self, user_id, message='it broke', **kwargs):
    raise ValueError(message)


@shared_task(base=SampleTask, bind=True, max_retries=2, default_retry_delay=0)
def retrying_task(self, user_id, succeed_on=2, **kwargs):
    """Retry until attempt ``succeed_on`` (1-based), then succeed."""
    if self.request.retries + 1 < succeed_on:
        raise self.retry(exc=RuntimeError('not yet'), countdown=0)
    return self.request.retries


@shared_task(base=SampleTask, bind=True)
def slow_task(self, user_id, steps=10, delay=0.2, **kwargs):
    """Take ``steps`` steps of ``delay`` seconds each, checking for cancellation at each."""
    for _ in range(steps):
        time.sleep(delay)
        self.status.increment_completed_steps()
    return steps


@shared_task(base=SampleTask, bind=True)
def custom_state_task(self, user_id, **kwargs):
    self.status.set_state('Exporting')
    self.status.increment_completed_steps()
    self.status.set_state('Compressing')
    return 'ok'


@shared_task(base=SampleTask, name='custom.registered.name', bind=True)
def custom_named_task(self, user_id, **kwargs):
    return self.name


@shared_task(base=SampleTask)
def unbound_task(user_id, label='unbound', **kwargs):
    return label


def logged(function):
    """A decorator hiding the signature behind ``*args, **kwargs`` (as edx-platform's do)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)
    return wrapper


@shared_task(base=SampleTask, bind=True)
@logged
def decorated_task(self, user_id, label='decorated', **kwargs):
    return label


@shared_task(base=SampleTask, bind=True)
def varargs_task(self, user_id, *args, **kwargs):
    return len(args)


@shared_task
def plain_task(*args, **kwargs):
    """Not a user task: gets no row."""
    return 'plain'


@shared_task(base=SampleTask, bind=True)
def counting_task(self, user_id, steps=1, **kwargs):
    """Take ``steps`` single steps, then write a ``Counted`` artifact with the count the database holds."""
    for _ in range(steps):
        self.status.increment_completed_steps()
    counted = type(self.status).objects.values_list('completed_steps', flat=True).get(pk=self.status.pk)
    UserTaskArtifact.objects.create(status=self.status, name='Counted', text=str(counted))
    return counted


def _mark(marker, text):
    """Append one line to the ``marker`` file (if any): the visible effects of a task body."""
    if marker:
        with open(marker, 'a', encoding='utf-8') as stream:
            stream.write(f'{text}\n')


@shared_task(base=SampleTask, bind=True)
def marker_task(self, user_id, marker=None, **kwargs):
    """Write ``ran`` to ``marker``: proves whether the body ran at all."""
    _mark(marker, 'ran')
    return 'ran'


@shared_task(base=SampleTask, bind=True)
def stepping_task(self, user_id, steps=10, delay=0.2, marker=None, **kwargs):
    """Like ``slow_task``, writing ``step N`` to ``marker`` after each step and ``done`` at the end."""
    _mark(marker, f'started {os.getpid()}')
    for step in range(steps):
        time.sleep(delay)
        self.status.increment_completed_steps()
        _mark(marker, f'step {step + 1}')
    _mark(marker, 'done')
    return steps


@shared_task(base=SampleTask, bind=True)
def sleepy_task(self, user_id, seconds=30, marker=None, **kwargs):
    """Sleep ``seconds`` without a single progress call (cancellation cannot reach it cooperatively)."""
    _mark(marker, f'started {os.getpid()}')
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    _mark(marker, 'done')
    return seconds


@shared_task(base=SampleTask, bind=True, time_limit=2)
def time_limited_task(self, user_id, seconds=30, marker=None, **kwargs):
    """Sleep past its hard time limit of 2 s (the worker's main process kills the child)."""
    _mark(marker, f'started {os.getpid()}')
    time.sleep(seconds)
    _mark(marker, 'done')
    return seconds


@shared_task
def plain_noop_task(user_id, **kwargs):
    """``noop_task``'s body as a plain Celery task (no status row): the throughput baseline."""
    return None


def _wait_for_file(path, seconds):
    """Wait (bounded) until ``path`` exists: the test releases a step of the body by creating it."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.path.exists(path)


@shared_task(base=SampleTask, bind=True)
def atomic_steps_task(self, user_id, steps=3, gate=None, artifact_first=False, hold=20, **kwargs):
    """
    Take ``steps`` steps inside one ``transaction.atomic()`` block, as an import does.

    After step N the body waits until the file ``<gate>.N`` exists (at most ``hold`` s), so
    the test can look at the progress while the block is still open.  ``artifact_first``
    inserts an artifact inside the block before the first step (on MariaDB that locks the
    status row until the block ends).
    """
    from django.db import transaction
    with transaction.atomic():
        if artifact_first:
            UserTaskArtifact.objects.create(status=self.status, name='Partial', text='inside the block')
        for step in range(1, steps + 1):
            self.status.increment_completed_steps()
            if gate:
                _wait_for_file(f'{gate}.{step}', hold)
        UserTaskArtifact.objects.create(status=self.status, text='committed with the block')
    return steps


@shared_task(base=SampleTask, bind=True)
def atomic_until_canceled_task(self, user_id, steps=1000, seconds=20, gate=None, **kwargs):
    """Inside one atomic block, set a stage and step every 50 ms until canceled (at most ``seconds``).

    Writes ``left the block`` to ``gate`` however the block is left.
    """
    from django.db import transaction
    deadline = time.monotonic() + seconds
    try:
        with transaction.atomic():
            self.status.set_state('Importing')
            while time.monotonic() < deadline:
                self.status.increment_completed_steps()
                time.sleep(0.05)
    finally:
        _mark(gate, 'left the block')
    return 'not canceled'


@shared_task(base=SampleTask, bind=True)
def atomic_row_locked_task(self, user_id, **kwargs):
    """Update its own status row with a queryset inside a block (a lock no signal tells of), then step twice."""
    from django.db import transaction
    with transaction.atomic():
        type(self.status).objects.filter(pk=self.status.pk).update(name='Renamed in the block')
        self.status.increment_completed_steps()
        self.status.increment_completed_steps()
    return 2


@shared_task(base=SampleTask, bind=True)
def spawning_task(self, user_id, other_user_id, **kwargs):
    """Publish a lone task for another user from inside a body (a canvas member's own work)."""
    return sample_task.delay(other_user_id, label='spawned').id


# -- OEP-3: identical tasks, per-user limits, retry (user_tasks.admission, user_tasks.retrying) --

class OncePerLabelTask(SampleTask):
    """One active task per user and ``label`` (or ``key``, when given)."""

    @classmethod
    def concurrency_key(cls, arguments_dict):
        return arguments_dict.get('key') or arguments_dict.get('label')


@shared_task(base=OncePerLabelTask, bind=True)
def keyed_task(self, user_id, label='task', seconds=0, marker=None, key=None, **kwargs):
    """Write ``ran <label>`` to ``marker``, then sleep ``seconds`` (so it stays active)."""
    _mark(marker, f'ran {label}')
    time.sleep(seconds)
    return label


class TwoPerUserTask(SampleTask):
    """At most two active per user."""

    max_active_per_user = 2


@shared_task(base=TwoPerUserTask, bind=True)
def limited_task(self, user_id, seconds=0, marker=None, **kwargs):
    """Write ``ran <task id>`` to ``marker``, then sleep ``seconds``."""
    _mark(marker, f'ran {self.request.id}')
    time.sleep(seconds)
    return self.request.id


class RetryableSampleTask(SampleTask):
    """Keeps its arguments so a failure can be tried again."""

    retryable = True


@shared_task(base=RetryableSampleTask, bind=True)
def flaky_task(self, user_id, failure_flag=None, label='flaky', delay=0, **kwargs):
    """After ``delay`` seconds, fail while the file ``failure_flag`` exists (a transient failure), else succeed."""
    time.sleep(delay)
    if failure_flag and os.path.exists(failure_flag):
        raise RuntimeError('the service is down')
    return label


class RetryableOncePerLabelTask(OncePerLabelTask):
    """Keyed, limited to three per user, and retryable: all three hooks, as the Studio example."""

    max_active_per_user = 3
    retryable = True


@shared_task(base=RetryableOncePerLabelTask, bind=True)
def guarded_task(self, user_id, label='task', seconds=0, fail=False, **kwargs):
    """Sleep ``seconds``, then fail when ``fail``."""
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f'{label} failed')
    return label


@shared_task(base=SampleTask, bind=True)
def staged_task(self, user_id, steps=6, delay=0.4, **kwargs):
    """Go through translatable stages as Studio's export does: Exporting, numbered items, Compressing."""
    self.status.set_state(stages.EXPORTING)
    for step in range(steps):
        time.sleep(delay)
        self.status.set_state(stages.ITEMS, done=step + 1, total=steps)
        self.status.increment_completed_steps()
    self.status.set_state(stages.COMPRESSING)
    time.sleep(delay)
    return steps


class LongNamedTask(SampleTask):
    """Named as Studio's import is, after a file name the user chose (which can be long)."""

    @classmethod
    def generate_name(cls, arguments_dict):
        return f"Import of course-v1:edX+Demo+2026 from {arguments_dict.get('filename', 'course.tar.gz')}"


@shared_task(base=LongNamedTask, bind=True)
def long_named_task(self, user_id, filename='course.tar.gz', stage='', rename='', **kwargs):
    """Set a stage and a new name of any length; return them as they were stored."""
    if stage:
        self.status.set_state(stage)
    if rename:
        self.status.set_name(rename)
    self.status.increment_completed_steps()
    return {'state': self.status.state, 'name': self.status.name}

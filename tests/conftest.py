"""Fixtures shared by the unit tests: users, the Celery app, an in-process worker, signal recorders."""
import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import translation

from tests.celery import app as tests_app
from user_tasks import user_task_stopped
from user_tasks.models import UserTaskStatus


@pytest.fixture(autouse=True)
def _default_language():
    """Start every test in the default language: LocaleMiddleware leaves a request's language active."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user('alice', 'alice@example.com')


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user('bob', 'bob@example.com')


@pytest.fixture
def celery_app():
    """The test project's Celery app, with protocol and eager mode restored afterwards."""
    saved = {key: tests_app.conf[key] for key in ('task_protocol', 'task_always_eager', 'task_eager_propagates')}
    yield tests_app
    for key, value in saved.items():
        tests_app.conf[key] = value
    _forget_message_builder(tests_app)


def _forget_message_builder(app):
    """Celery caches the message builder of the protocol first used; drop it after a change."""
    app.amqp.__dict__.pop('create_task_message', None)


@pytest.fixture(params=[1, 2], ids=['proto1', 'proto2'])
def protocol(request, celery_app):
    celery_app.conf.task_protocol = request.param
    _forget_message_builder(celery_app)
    assert celery_app.amqp.create_task_message == celery_app.amqp.task_protocols[request.param]
    return request.param


@pytest.fixture
def eager(celery_app):
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = False  # pinned: other modules may change it
    return celery_app


@pytest.fixture(scope='session')
def _session_worker():
    # The memory transport polls its queues; the default 1 s would dominate every test.
    tests_app.conf.broker_transport_options = dict(tests_app.conf.broker_transport_options or {},
                                                   polling_interval=0.01)
    with start_worker(tests_app, perform_ping_check=False, pool='solo', shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def worker(_session_worker, transactional_db):
    """
    A real in-process Celery worker consuming the memory broker (needs committed data).

    Messages other tests published without running them are dropped first, so the
    worker runs only this test's tasks.
    """
    with tests_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(tests_app.conf.task_default_queue)
    return _session_worker


class StoppedRecorder:
    """Records every ``user_task_stopped`` with the state the receiver saw, in memory and in the DB."""

    def __init__(self):
        self.calls = []

    def __call__(self, sender, status=None, **kwargs):
        db_state = UserTaskStatus.objects.filter(pk=status.pk).values_list('state', flat=True).first()
        self.calls.append({'sender': sender, 'status': status, 'state': status.state, 'db_state': db_state,
                           'task_id': status.task_id, 'kwargs': kwargs})

    def task_ids(self):
        return [call['task_id'] for call in self.calls]

    def for_task(self, task_id):
        return [call for call in self.calls if call['task_id'] == task_id]


@pytest.fixture
def stopped():
    recorder = StoppedRecorder()
    user_task_stopped.connect(recorder, weak=False, dispatch_uid='tests.stopped_recorder')
    yield recorder
    user_task_stopped.disconnect(dispatch_uid='tests.stopped_recorder')


@pytest.fixture
def make_status(user):
    """Create a status row directly (no Celery)."""
    counter = {'n': 0}

    def make(**fields):
        counter['n'] += 1
        values = {'user': user, 'task_id': f'task-{counter["n"]}', 'task_class': 'tests.tasks.sample_task',
                  'name': f'Task {counter["n"]}', 'total_steps': 1}
        values.update(fields)
        return UserTaskStatus.objects.create(**values)
    return make


UNCONSUMED_QUEUE = 'user_tasks_unit_unconsumed'


def wait_until(predicate, timeout=10, interval=0.02):
    """Poll ``predicate`` until it returns a truthy value (Celery stores a result before its success signal)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class PublishedRecorder:
    """Records every message published (``after_task_publish``) and whether its row existed then."""

    def __init__(self):
        self.calls = []

    def __call__(self, sender=None, body=None, headers=None, **kwargs):
        task_id = (headers or {}).get('id') or (body or {}).get('id')
        row = UserTaskStatus.objects.filter(task_id=task_id).values('state', 'task_class').first()
        self.calls.append({'task': sender, 'task_id': task_id, 'row': row})

    def task_ids(self):
        return [call['task_id'] for call in self.calls]


@pytest.fixture
def published():
    from celery.signals import after_task_publish
    recorder = PublishedRecorder()
    after_task_publish.connect(recorder, weak=False, dispatch_uid='tests.published_recorder')
    yield recorder
    after_task_publish.disconnect(dispatch_uid='tests.published_recorder')

"""The Celery receivers of ``user_tasks.signals``, called directly."""
import copy
import logging
import uuid
import weakref
from contextlib import contextmanager
from unittest import mock

import pytest

from tests import unit_tasks  # noqa: F401  registers the extra tasks
from tests.tasks import noop_task, plain_task, sample_task
from user_tasks import signals
from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskStatus

pytestmark = pytest.mark.django_db

S = UserTaskStatus
MISSING = 'Each invocation of a UserTaskMixin subclass must include the user_id'


def new_id():
    return str(uuid.uuid4())


def proto1_body(task_id, args, kwargs, task='tests.tasks.sample_task', **extra):
    body = {'id': task_id, 'task': task, 'args': list(args), 'kwargs': kwargs, 'retries': 0, 'eta': None,
            'expires': None, 'utc': True, 'callbacks': None, 'errbacks': None, 'timelimit': (None, None),
            'taskset': None, 'chord': None}
    body.update(extra)
    return body


def proto2_message(task_id, args, kwargs, task='tests.tasks.sample_task', embed=None, **extra_headers):
    headers = {'lang': 'py', 'task': task, 'id': task_id, 'shadow': None, 'eta': None, 'expires': None,
               'group': None, 'group_index': None, 'retries': 0, 'timelimit': [None, None],
               'root_id': task_id, 'parent_id': None, 'argsrepr': repr(args), 'kwargsrepr': repr(kwargs),
               'origin': 'gen1@host', 'ignore_result': False}
    headers.update(extra_headers)
    body = (tuple(args), kwargs, embed or {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None})
    return body, headers


@contextmanager
def running(task, task_id, args=(), kwargs=None):
    """Push a request, as a worker does around the task body."""
    task.push_request(id=task_id, args=list(args), kwargs=kwargs or {})
    try:
        yield task
    finally:
        task.pop_request()


class TestCreateUserTask:

    def test_protocol_1(self, user):
        task_id = new_id()
        body = proto1_body(task_id, [user.pk], {'label': 'one', 'steps': 3})
        original = copy.deepcopy(body)
        signals.create_user_task(sender='tests.tasks.sample_task', body=body, headers={})
        status = S.objects.get(task_id=task_id)
        assert (status.user, status.task_class, status.name, status.total_steps) == (
            user, 'tests.tasks.sample_task', 'Sample one', 3)
        assert (status.state, status.is_container, status.parent) == (S.PENDING, False, None)
        assert body == original  # the message is never changed

    def test_protocol_2(self, user):
        task_id = new_id()
        body, headers = proto2_message(task_id, [], {'user_id': user.pk, 'label': 'two', 'steps': 4})
        original = copy.deepcopy((body, headers))
        signals.create_user_task(sender='tests.tasks.sample_task', body=body, headers=headers)
        status = S.objects.get(task_id=task_id)
        assert (status.user, status.task_class, status.name, status.total_steps) == (
            user, 'tests.tasks.sample_task', 'Sample two', 4)
        assert (body, headers) == original

    def test_default_name_is_function_name(self, user):
        task_id = new_id()
        body, headers = proto2_message(task_id, [user.pk], {}, task='tests.unit_tasks.default_task')
        signals.create_user_task(sender='tests.unit_tasks.default_task', body=body, headers=headers)
        status = S.objects.get(task_id=task_id)
        assert (status.name, status.total_steps, status.task_class) == (
            'default_task', 1, 'tests.unit_tasks.default_task')

    def test_not_a_user_task(self, user):
        body, headers = proto2_message(new_id(), [user.pk], {}, task='tests.tasks.plain_task')
        signals.create_user_task(sender='tests.tasks.plain_task', body=body, headers=headers)
        signals.create_user_task(sender='not.registered', body=body, headers=headers)
        assert not S.objects.exists()

    def test_retry_message_creates_no_new_row(self, user):
        body = proto1_body(new_id(), [user.pk], {}, retries=1)
        signals.create_user_task(sender='tests.tasks.sample_task', body=body, headers={})
        assert not S.objects.exists()

    @pytest.mark.parametrize('proto', [1, 2])
    def test_missing_user_id(self, proto, caplog):
        task_id = new_id()
        if proto == 1:
            call = {'body': proto1_body(task_id, [], {'label': 'x'}), 'headers': {}}
        else:
            body, headers = proto2_message(task_id, [], {'label': 'x'})
            call = {'body': body, 'headers': headers}
        with caplog.at_level(logging.ERROR), pytest.raises(TypeError) as info:
            signals.create_user_task(sender='tests.tasks.sample_task', **call)
        assert str(info.value) == MISSING
        assert MISSING in caplog.text
        assert not S.objects.exists()

    @pytest.mark.parametrize('proto', [1, 2])
    def test_unknown_user_id(self, proto, caplog):
        task_id = new_id()
        if proto == 1:
            call = {'body': proto1_body(task_id, [98765], {}), 'headers': {}}
        else:
            body, headers = proto2_message(task_id, [98765], {})
            call = {'body': body, 'headers': headers}
        with caplog.at_level(logging.ERROR), pytest.raises(TypeError) as info:
            signals.create_user_task(sender='tests.tasks.sample_task', **call)
        assert str(info.value) == 'Invalid user_id: 98765'
        assert 'Invalid user_id: 98765' in caplog.text
        assert not S.objects.exists()

    def test_invalid_user_id_value(self):
        body, headers = proto2_message(new_id(), ['not-a-number'], {})
        with pytest.raises(TypeError) as info:
            signals.create_user_task(sender='tests.tasks.sample_task', body=body, headers=headers)
        assert str(info.value) == 'Invalid user_id: not-a-number'


@pytest.mark.django_db(transaction=True)
def test_unknown_user_id_outside_a_transaction(user):
    body, headers = proto2_message(new_id(), [98765], {})
    with pytest.raises(TypeError) as info:
        signals.create_user_task(sender='tests.tasks.sample_task', body=body, headers=headers)
    assert str(info.value) == 'Invalid user_id: 98765'
    assert not S.objects.exists()


class TestStartUserTask:

    def test_starts_the_row(self, make_status):
        status = make_status(task_id=new_id())
        with running(sample_task, status.task_id, [status.user_id]) as task:
            signals.start_user_task(sender=task, task_id=status.task_id, task=task)
            assert not getattr(task.request, 'user_task_skip', None)
        row = S.objects.get(pk=status.pk)
        assert row.state == S.IN_PROGRESS and row.started is not None

    def test_creates_missing_row(self, user):
        task_id = new_id()
        with running(sample_task, task_id, [user.pk], {'label': 'late', 'steps': 2}) as task:
            signals.start_user_task(sender=task, task_id=task_id, task=task)
        row = S.objects.get(task_id=task_id)
        assert (row.state, row.name, row.total_steps, row.task_class) == (
            S.IN_PROGRESS, 'Sample late', 2, 'tests.tasks.sample_task')

    def test_canceled_row_is_skipped(self, make_status):
        status = make_status(task_id=new_id(), state=S.CANCELED)
        with running(sample_task, status.task_id, [status.user_id]) as task:
            signals.start_user_task(sender=task, task_id=status.task_id, task=task)
            assert task.request.user_task_skip
        assert S.objects.get(pk=status.pk).state == S.CANCELED

    def test_final_row_is_skipped(self, make_status):
        status = make_status(task_id=new_id(), state=S.FAILED)
        with running(sample_task, status.task_id, [status.user_id]) as task:
            signals.start_user_task(sender=task, task_id=status.task_id, task=task)
            assert task.request.user_task_skip

    def test_not_a_user_task(self, user):
        with running(plain_task, new_id()) as task:
            signals.start_user_task(sender=task, task_id=task.request.id, task=task)
        assert not S.objects.exists()

    def test_close_old_connections_skipped_in_atomic_block(self, make_status):
        status = make_status(task_id=new_id())
        with mock.patch.object(signals, 'close_old_connections') as close:
            with running(sample_task, status.task_id, [status.user_id]) as task:
                signals.start_user_task(sender=task, task_id=status.task_id, task=task)
        close.assert_not_called()


@pytest.mark.django_db(transaction=True)
def test_start_user_task_closes_old_connections(make_status):
    status = make_status(task_id=new_id())
    with mock.patch.object(signals, 'close_old_connections') as close:
        with running(sample_task, status.task_id, [status.user_id]) as task:
            signals.start_user_task(sender=task, task_id=status.task_id, task=task)
    close.assert_called_once_with()
    assert S.objects.get(pk=status.pk).state == S.IN_PROGRESS


def test_retrying_task(make_status):
    status = make_status(task_id=new_id(), state=S.IN_PROGRESS)
    with running(sample_task, status.task_id, [status.user_id]) as task:
        signals.retrying_task(sender=task, request=task.request, reason=RuntimeError('again'))
    row = S.objects.get(pk=status.pk)
    assert (row.state, row.attempts) == (S.RETRYING, 2)


class TestTaskFailed:

    def test_fails_with_exception_text(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(task_id=new_id(), state=S.IN_PROGRESS)
        with django_capture_on_commit_callbacks(execute=True):
            with running(sample_task, status.task_id, [status.user_id]) as task:
                signals.task_failed(sender=task, task_id=status.task_id, exception=ValueError('bad input'))
        row = S.objects.get(pk=status.pk)
        assert row.state == S.FAILED
        assert list(row.artifacts.values_list('name', 'text')) == [('Error', 'bad input')]
        assert [(c['sender'], c['task_id'], c['db_state']) for c in stopped.calls] == [
            (UserTaskStatus, status.task_id, S.FAILED)]

    def test_cancellation_is_not_a_failure(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(task_id=new_id(), state=S.CANCELED)
        with django_capture_on_commit_callbacks(execute=True):
            with running(sample_task, status.task_id, [status.user_id]) as task:
                signals.task_failed(sender=task, task_id=status.task_id,
                                    exception=TaskCanceledException('canceled'))
        row = S.objects.get(pk=status.pk)
        assert row.state == S.CANCELED and not row.artifacts.exists()
        assert row.finished is not None
        assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(status.task_id, S.CANCELED)]

    def test_finds_row_by_task_id_without_request(self, make_status):
        status = make_status(task_id=new_id(), state=S.IN_PROGRESS)
        signals.task_failed(sender=sample_task, task_id=status.task_id, exception=ValueError('lost'))
        assert S.objects.get(pk=status.pk).state == S.FAILED

    def test_not_a_user_task(self, make_status):
        status = make_status(task_id=new_id(), state=S.IN_PROGRESS)
        signals.task_failed(sender=plain_task, task_id=status.task_id, exception=ValueError('x'))
        assert S.objects.get(pk=status.pk).state == S.IN_PROGRESS


class TestTaskSucceeded:

    def test_succeeds(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(task_id=new_id(), state=S.IN_PROGRESS, total_steps=4)
        with django_capture_on_commit_callbacks(execute=True):
            with running(noop_task, status.task_id, [status.user_id]) as task:
                signals.task_succeeded(sender=task, result=None)
        row = S.objects.get(pk=status.pk)
        assert (row.state, row.completed_steps) == (S.SUCCEEDED, 4)
        assert [(c['sender'], c['db_state']) for c in stopped.calls] == [(UserTaskStatus, S.SUCCEEDED)]

    @pytest.mark.parametrize('state', [S.CANCELED, S.FAILED, S.RETRYING])
    def test_not_when_canceled_failed_or_retrying(self, make_status, state):
        status = make_status(task_id=new_id(), state=state)
        with running(noop_task, status.task_id, [status.user_id]) as task:
            signals.task_succeeded(sender=task, result=None)
        assert S.objects.get(pk=status.pk).state == state

    def test_canceled_while_running_announced_once(self, make_status, stopped,
                                                   django_capture_on_commit_callbacks):
        status = make_status(task_id=new_id(), state=S.CANCELED)
        with django_capture_on_commit_callbacks(execute=True):
            with running(noop_task, status.task_id, [status.user_id]) as task:
                signals.task_succeeded(sender=task, result=None)
                signals.task_succeeded(sender=task, result=None)
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]


def test_receivers_connected():
    from celery.signals import before_task_publish, task_failure, task_prerun, task_retry, task_success
    for signal, receiver in ((before_task_publish, signals.create_user_task), (task_prerun, signals.start_user_task),
                             (task_retry, signals.retrying_task), (task_failure, signals.task_failed),
                             (task_success, signals.task_succeeded)):
        connected = [r() if isinstance(r, weakref.ReferenceType) else r for _, r in signal.receivers]
        assert receiver in connected, signal.name

"""
Behaviours a host notices at once, kept exactly as django-user-tasks 4.0 has them.

Items 0, 1, 3 and 4 have their own modules (test_view_class_attributes, test_testcase_autocommit,
test_models::TestIncrementCompletedSteps, test_utils); this one holds items 2 and 5.
"""
import uuid
from unittest import mock

import pytest
from django.db import transaction

from tests import unit_tasks
from tests.conftest import UNCONSUMED_QUEUE
from tests.tasks import sample_task
from user_tasks import signals
from user_tasks.models import UserTaskStatus

MISSING = 'Each invocation of a UserTaskMixin subclass must include the user_id'


@pytest.fixture
def hooks():
    unit_tasks.HostHookTask.hook_calls.clear()
    yield unit_tasks.HostHookTask.hook_calls
    unit_tasks.HostHookTask.hook_calls.clear()


# -- item 2: a publish without user_id fails with 4.0's TypeError before any host hook ---------

@pytest.mark.django_db
@pytest.mark.parametrize('body', [
    {'args': [], 'kwargs': {'course': 'x'}},
    {'args': [], 'kwargs': {}},
], ids=['other-kwargs', 'nothing'])
def test_missing_user_id_raises_before_host_hooks(hooks, body):
    message = dict(body, id=str(uuid.uuid4()), task=unit_tasks.host_hook_task.name, retries=0, taskset=None,
                   chord=None, callbacks=None, errbacks=None)
    with pytest.raises(TypeError) as info:
        signals.create_user_task(sender=unit_tasks.host_hook_task.name, body=message, headers={})
    assert type(info.value) is TypeError and str(info.value) == MISSING
    assert hooks == []
    assert not UserTaskStatus.objects.exists()


@pytest.mark.django_db
def test_missing_user_id_on_publish_is_logged_and_hooks_untouched(hooks, caplog):
    with caplog.at_level('ERROR'):
        unit_tasks.host_hook_task.apply_async((), {'course': 'x'}, queue=UNCONSUMED_QUEUE)
    assert MISSING in caplog.text
    assert 'KeyError' not in caplog.text
    assert hooks == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'course': 'x'}, MISSING),
    ({'user_id': 987654}, 'Invalid user_id: 987654'),
], ids=['missing', 'unknown'])
def test_a_bad_user_id_inside_a_transaction_reaches_the_log_too(hooks, caplog, kwargs, message):
    """Inside ``atomic()`` the row is written before Celery is called (publish on commit): it is logged there."""
    with caplog.at_level('ERROR'), pytest.raises(TypeError) as info, transaction.atomic():
        unit_tasks.host_hook_task.apply_async((), kwargs, queue=UNCONSUMED_QUEUE)
    assert str(info.value) == message
    assert message in caplog.text
    assert not UserTaskStatus.objects.exists()


@pytest.mark.django_db
def test_publish_is_recorded_while_signals_celery_app_is_patched(user, protocol):
    """A host's test patches ``signals.celery_app`` (to watch revokes): publishes are still recorded."""
    with mock.patch('user_tasks.signals.celery_app') as app:
        app.conf.task_protocol = protocol
        result = sample_task.apply_async((user.pk,), {'label': 'x'}, queue=UNCONSUMED_QUEUE)
    assert UserTaskStatus.objects.get(task_id=result.id).name == 'Sample x'


@pytest.mark.django_db
def test_a_protocol_2_body_is_read_as_such_whatever_its_headers(user):
    """``(args, kwargs, embed)`` is protocol 2 even when the headers lack ``task``."""
    headers = {'id': 'proto2-without-task-header', 'retries': 0, 'group': None}
    body = ((user.pk,), {'label': 'y'}, {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None})
    signals.create_user_task(sender=sample_task.name, body=body, headers=headers)
    assert UserTaskStatus.objects.get(task_id='proto2-without-task-header').name == 'Sample y'


@pytest.mark.django_db
def test_hooks_run_when_user_id_is_given(hooks, user):
    unit_tasks.host_hook_task.apply_async((), {'user_id': user.pk}, queue=UNCONSUMED_QUEUE)
    assert hooks == ['generate_name', 'calculate_total_steps']
    assert UserTaskStatus.objects.get().name == f'Export for {user.pk}'


# -- item 5: task_prerun closes stale connections as 4.0 does ----------------------------------

def _prerun(status):
    task = sample_task
    task.push_request(id=status.task_id, args=[status.user_id], kwargs={})
    try:
        signals.start_user_task(sender=task, task_id=status.task_id, task=task)
    finally:
        task.pop_request()


def _transaction(in_atomic_block=None, error=None):
    """A stand-in for ``user_tasks.signals.transaction`` (the real module is shared by the ORM)."""
    fake = mock.Mock()
    if error is not None:
        fake.get_connection.side_effect = error
    else:
        fake.get_connection.return_value = mock.Mock(in_atomic_block=in_atomic_block)
    return fake


@pytest.mark.django_db
def test_prerun_closes_old_connections_once_outside_atomic(make_status):
    status = make_status(task_id=str(uuid.uuid4()))
    fake = _transaction(in_atomic_block=False)
    with mock.patch.object(signals, 'transaction', fake), mock.patch.object(signals, 'close_old_connections') as close:
        _prerun(status)
    fake.get_connection.assert_called_once()
    close.assert_called_once_with()


@pytest.mark.django_db
def test_prerun_leaves_connections_inside_atomic_block(make_status):
    status = make_status(task_id=str(uuid.uuid4()))
    with mock.patch.object(signals, 'transaction', _transaction(in_atomic_block=True)), \
            mock.patch.object(signals, 'close_old_connections') as close:
        _prerun(status)
    close.assert_not_called()


@pytest.mark.django_db
def test_prerun_leaves_connections_when_get_connection_raises(make_status):
    status = make_status(task_id=str(uuid.uuid4()))
    with mock.patch.object(signals, 'transaction', _transaction(error=Exception('no database'))), \
            mock.patch.object(signals, 'close_old_connections') as close:
        _prerun(status)
    close.assert_not_called()
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.IN_PROGRESS

"""UserTask end to end: publish, run (in-process worker or eager), names, arguments, stop signal."""
import pytest
from django.db import transaction
from django.test.utils import override_settings

from tests import unit_tasks
from tests.conftest import UNCONSUMED_QUEUE, wait_until
from tests.tasks import (
    custom_named_task,
    custom_state_task,
    decorated_task,
    failing_task,
    noop_task,
    retrying_task,
    sample_task,
    unbound_task,
    varargs_task,
)
from user_tasks.models import UserTaskStatus
from user_tasks.tasks import UserTask, UserTaskMixin, purge_old_user_tasks

S = UserTaskStatus


def final_row(stopped, task_id, timeout=10):
    """
    The row of ``task_id`` once its stop has been announced.

    The in-process worker shares SQLite's in-memory database in shared-cache mode, where a
    lock conflict fails at once instead of waiting, so this thread leaves the database alone
    until the worker has announced the stop (its last write for the row).
    """
    assert wait_until(lambda: stopped.for_task(task_id), timeout), stopped.calls
    return S.objects.get(task_id=task_id)


def wait_stopped(stopped, count, timeout=10):
    assert wait_until(lambda: len(stopped.calls) >= count, timeout), stopped.calls


# -- classes and arguments ------------------------------------------------------------------

def test_user_task_is_abstract_task_with_mixin():
    from celery import Task
    assert issubclass(UserTask, UserTaskMixin) and issubclass(UserTask, Task)
    assert UserTask.abstract is True
    assert purge_old_user_tasks.name == 'user_tasks.tasks.purge_old_user_tasks'


def test_arguments_as_dict_maps_names_and_defaults():
    assert sample_task.arguments_as_dict(5) == {'user_id': 5, 'label': 'task', 'steps': 1, 'kwargs': {}}
    assert sample_task.arguments_as_dict(5, 'x', steps=3, extra=1) == {
        'user_id': 5, 'label': 'x', 'steps': 3, 'kwargs': {'extra': 1}}
    assert sample_task.arguments_as_dict(user_id=7) == {'user_id': 7, 'label': 'task', 'steps': 1, 'kwargs': {}}


def test_arguments_as_dict_var_positional_and_keyword():
    assert varargs_task.arguments_as_dict(1, 2, 3, x=4) == {'user_id': 1, 'args': (2, 3), 'kwargs': {'x': 4}}


def test_arguments_as_dict_unbound_and_decorated():
    assert unbound_task.arguments_as_dict(3, 'lbl') == {'user_id': 3, 'label': 'lbl', 'kwargs': {}}
    assert decorated_task.arguments_as_dict(3, 'lbl') == {'user_id': 3, 'label': 'lbl', 'kwargs': {}}


def test_default_generate_name_and_steps():
    assert unit_tasks.default_task.generate_name({'user_id': 1}) == 'default_task'
    assert unit_tasks.default_task.calculate_total_steps({'user_id': 1}) == 1


# -- publish (rows at publish) -----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_row_written_at_publish(protocol, user, published):
    result = sample_task.apply_async((user.pk,), {'label': 'queued', 'steps': 4}, queue=UNCONSUMED_QUEUE)
    row = S.objects.get(task_id=result.id)
    assert (row.user, row.state, row.name, row.total_steps, row.task_class, row.parent) == (
        user, S.PENDING, 'Sample queued', 4, 'tests.tasks.sample_task', None)
    assert published.task_ids() == [result.id]
    assert published.calls[0]['row']['state'] == S.PENDING  # the row existed before the message left


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('task, args, kwargs, name', [
    (custom_named_task, (), {}, 'Sample task'),
    (unbound_task, ('ub',), {}, 'Sample ub'),
    (decorated_task, ('dec',), {}, 'Sample dec'),
])
def test_task_class_is_registered_name_at_publish(protocol, user, task, args, kwargs, name):
    result = task.apply_async((user.pk,) + args, kwargs, queue=UNCONSUMED_QUEUE)
    row = S.objects.get(task_id=result.id)
    assert (row.task_class, row.name) == (task.name, name)
    if task is custom_named_task:
        assert row.task_class == 'custom.registered.name'


@pytest.mark.django_db(transaction=True)
def test_missing_user_id_is_logged_and_records_nothing(protocol, user, caplog):
    # Celery logs (and swallows) a before_task_publish receiver's error, as with upstream.
    with caplog.at_level('ERROR'):
        unit_tasks.loose_task.apply_async((), {'label': 'x'}, queue=UNCONSUMED_QUEUE)
    assert 'Each invocation of a UserTaskMixin subclass must include the user_id' in caplog.text
    assert not S.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_unknown_user_id_is_logged_and_records_nothing(protocol, user, caplog):
    with caplog.at_level('ERROR'):
        sample_task.apply_async((98765,), queue=UNCONSUMED_QUEUE)
    assert 'Invalid user_id: 98765' in caplog.text
    assert not S.objects.exists()


def test_arguments_as_dict_ignores_user_task_name_the_function_cannot_take():
    assert unit_tasks.strict_task.arguments_as_dict(4, user_task_name='N') == {'user_id': 4, 'label': 'strict'}
    assert unit_tasks.kwargs_task.arguments_as_dict(4, user_task_name='N') == {
        'user_id': 4, 'kwargs': {'user_task_name': 'N'}}


# -- real execution in an in-process worker ----------------------------------------------------

def test_run_in_worker(protocol, worker, user, stopped):
    result = sample_task.apply_async((user.pk,), {'label': 'e2e', 'steps': 3})
    assert result.get(timeout=10, interval=0.01) == 'e2e'
    row = final_row(stopped, result.id)
    assert (row.state, row.completed_steps, row.total_steps, row.name) == (S.SUCCEEDED, 3, 3, 'Sample e2e')
    assert row.started is not None and row.finished is not None
    assert list(row.artifacts.values_list('name', 'text')) == [('Output', 'done e2e')]
    wait_stopped(stopped, 1)
    assert [(c['sender'], c['task_id'], c['state'], c['db_state']) for c in stopped.calls] == [
        (UserTaskStatus, result.id, S.SUCCEEDED, S.SUCCEEDED)]


def test_failure_in_worker(protocol, worker, user, stopped):
    result = failing_task.apply_async((user.pk,), {'message': 'disk full'})
    row = final_row(stopped, result.id)
    assert row.state == S.FAILED
    assert list(row.artifacts.values_list('name', 'text')) == [('Error', 'disk full')]
    wait_stopped(stopped, 1)
    assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(result.id, S.FAILED)]


def test_retry_in_worker(protocol, worker, user, stopped):
    result = retrying_task.apply_async((user.pk,), {'succeed_on': 2})
    row = final_row(stopped, result.id)
    assert (row.state, row.attempts) == (S.SUCCEEDED, 2)
    assert S.objects.count() == 1  # the retry message makes no new row
    wait_stopped(stopped, 1)
    assert len(stopped.calls) == 1


def test_custom_state_in_worker(worker, user, stopped):
    result = custom_state_task.apply_async((user.pk,))
    row = final_row(stopped, result.id)
    assert (row.state, row.completed_steps) == (S.SUCCEEDED, 1)


def test_canceled_while_running_in_worker(protocol, worker, user, stopped):
    result = unit_tasks.canceling_task.apply_async((user.pk,))
    row = final_row(stopped, result.id)
    assert row.state == S.CANCELED and not row.artifacts.exists()
    wait_stopped(stopped, 1)
    assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(result.id, S.CANCELED)]


@pytest.mark.parametrize('task, args, expected', [
    (custom_named_task, (), 'custom.registered.name'),
    (unbound_task, ('ub',), 'ub'),
    (decorated_task, ('dec',), 'dec'),
])
def test_custom_name_unbound_and_decorated_in_worker(protocol, worker, user, stopped, task, args, expected):
    result = task.apply_async((user.pk,) + args)
    assert result.get(timeout=10, interval=0.01) == expected
    row = final_row(stopped, result.id)
    assert (row.state, row.task_class) == (S.SUCCEEDED, task.name)


def test_user_task_name_reaches_kwargs_function_in_worker(worker, user):
    result = unit_tasks.kwargs_task.apply_async((user.pk,), {'user_task_name': 'Export', 'x': 1})
    assert result.get(timeout=10, interval=0.01) == {'user_task_name': 'Export', 'x': 1}


def test_user_task_name_stripped_for_strict_function_in_worker(worker, user, stopped):
    result = unit_tasks.strict_task.apply_async((user.pk,), {'user_task_name': 'Export', 'label': 'ok'})
    assert result.get(timeout=10, interval=0.01) == 'ok'
    assert final_row(stopped, result.id).state == S.SUCCEEDED


@pytest.mark.django_db
def test_canceled_task_never_runs_its_body(user, stopped, django_capture_on_commit_callbacks):
    result = sample_task.apply_async((user.pk,), {'label': 'never'}, queue=UNCONSUMED_QUEUE)
    row = S.objects.get(task_id=result.id)
    with django_capture_on_commit_callbacks(execute=True):
        row.cancel()
        # The message arrives anyway (revoke is best effort): the worker must not run the body.
        outcome = sample_task.apply((user.pk,), {'label': 'never'}, task_id=result.id)
    assert outcome.state == 'IGNORED'
    row.refresh_from_db()
    assert row.state == S.CANCELED and not row.artifacts.exists()
    assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(result.id, S.CANCELED)]


# -- eager mode -------------------------------------------------------------------------------

@pytest.mark.django_db
class TestEager:

    def test_runs_and_records(self, eager, user, stopped, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            result = sample_task.apply_async((user.pk,), {'label': 'eager', 'steps': 2})
        assert result.get() == 'eager'
        row = S.objects.get(task_id=result.id)
        assert (row.state, row.completed_steps, row.total_steps, row.name, row.task_class) == (
            S.SUCCEEDED, 2, 2, 'Sample eager', 'tests.tasks.sample_task')
        assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(result.id, S.SUCCEEDED)]

    def test_delay(self, eager, user):
        result = noop_task.delay(user.pk)
        assert S.objects.get(task_id=result.id).state == S.SUCCEEDED

    def test_failure(self, eager, user, stopped, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            result = failing_task.apply_async((user.pk,), {'message': 'eager broke'})
        row = S.objects.get(task_id=result.id)
        assert row.state == S.FAILED and row.artifacts.get(name='Error').text == 'eager broke'
        assert [c['db_state'] for c in stopped.calls] == [S.FAILED]

    @pytest.mark.parametrize('task, args', [(custom_named_task, ()), (unbound_task, ('ub',)),
                                            (decorated_task, ('dec',)), (unit_tasks.default_task, ())])
    def test_task_class_is_registered_name(self, eager, user, task, args):
        result = task.apply_async((user.pk,) + args)
        row = S.objects.get(task_id=result.id)
        assert (row.state, row.task_class) == (S.SUCCEEDED, task.name)

    def test_user_task_name(self, eager, user):
        assert unit_tasks.kwargs_task.apply_async((user.pk,), {'user_task_name': 'N'}).get() == {'user_task_name': 'N'}
        assert unit_tasks.strict_task.apply_async((user.pk,), {'user_task_name': 'N'}).get() == 'strict'

    def test_not_deferred_inside_atomic(self, eager, user):
        with transaction.atomic():
            result = sample_task.apply_async((user.pk,), {'label': 'now'})
            assert result.successful()
            assert S.objects.get(task_id=result.id).state == S.SUCCEEDED

    def test_missing_user_id(self, eager, user, caplog):
        with caplog.at_level('ERROR'):
            unit_tasks.loose_task.apply_async((), {'label': 'x'})
        assert 'Each invocation of a UserTaskMixin subclass must include the user_id' in caplog.text
        assert not S.objects.exists()


# -- transaction-safe publish -----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
class TestPublishOnCommit:

    def test_row_in_transaction_message_after_commit(self, protocol, user, published):
        with transaction.atomic():
            result = sample_task.apply_async((user.pk,), {'label': 'tx'}, queue=UNCONSUMED_QUEUE)
            assert result.id  # the AsyncResult, with its id fixed, at once
            row = S.objects.get(task_id=result.id)
            assert (row.state, row.name) == (S.PENDING, 'Sample tx')
            assert published.calls == []
        assert published.task_ids() == [result.id]
        assert published.calls[0]['row']['state'] == S.PENDING

    def test_rollback_leaves_no_row_and_no_message(self, protocol, user, published):
        class Boom(Exception):
            pass
        with pytest.raises(Boom):
            with transaction.atomic():
                result = sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
                raise Boom()
        assert not S.objects.filter(task_id=result.id).exists()
        assert published.calls == []

    def test_given_task_id_kept(self, user, published):
        with transaction.atomic():
            result = sample_task.apply_async((user.pk,), task_id='fixed-id', queue=UNCONSUMED_QUEUE)
        assert result.id == 'fixed-id'
        assert S.objects.filter(task_id='fixed-id').exists()
        assert published.task_ids() == ['fixed-id']

    def test_setting_off_sends_at_once(self, user, published):
        with override_settings(USER_TASKS_PUBLISH_ON_COMMIT=False):
            with transaction.atomic():
                result = sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
                assert published.task_ids() == [result.id]

    def test_invalid_user_fails_publish_not_transaction(self, user, published):
        with transaction.atomic():
            with pytest.raises(TypeError, match='^Invalid user_id: 98765$'):
                sample_task.apply_async((98765,), queue=UNCONSUMED_QUEUE)
            sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
        assert S.objects.count() == 1 and len(published.calls) == 1

    def test_runs_in_worker_after_commit(self, worker, user, stopped):
        with transaction.atomic():
            result = sample_task.apply_async((user.pk,), {'label': 'after'})
        assert result.get(timeout=10, interval=0.01) == 'after'
        assert final_row(stopped, result.id).state == S.SUCCEEDED

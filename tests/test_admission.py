"""
OEP-3 at publish (``user_tasks.admission``): identical concurrent tasks, per-user limits, arguments kept.

The unit layer publishes to a queue nothing consumes (the rows stay Pending unless a test
moves them) and counts the messages really sent with ``after_task_publish``.  The same
behaviour across processes, on PostgreSQL and MariaDB with a real worker, is in
``tests/integration/test_admission.py``.
"""
import json
from datetime import timedelta

import pytest
from celery import group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from tests.conftest import UNCONSUMED_QUEUE
from tests.tasks import flaky_task, guarded_task, keyed_task, limited_task, sample_task
from user_tasks import lifecycle
from user_tasks.admission import MAX_KEY_LENGTH, limit_of
from user_tasks.exceptions import ArgumentsNotStorable, TooManyActiveTasks
from user_tasks.models import UserTaskStatus
from user_tasks.recovery import reap

pytestmark = pytest.mark.django_db(transaction=True)

KEYED = 'tests.tasks.keyed_task'
LIMITED = 'tests.tasks.limited_task'


def publish(task, user, **kwargs):
    return task.apply_async((user.pk,), kwargs, queue=UNCONSUMED_QUEUE)


def rows(task_class, user=None):
    query = UserTaskStatus.objects.filter(task_class=task_class)
    if user is not None:
        query = query.filter(user=user)
    return list(query.order_by('id'))


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def events():
    """Every lifecycle event delivered, as (kind, status, details)."""
    seen = []

    def record(sender, status=None, kind=None, signal=None, **details):
        seen.append((kind, status, details))
    lifecycle.event.connect(record, weak=False, dispatch_uid='tests.admission.events')
    yield seen
    lifecycle.event.disconnect(dispatch_uid='tests.admission.events')


# -- identical concurrent tasks ---------------------------------------------------------

def test_identical_publish_sends_nothing_and_returns_the_active_task(user, published, events):
    before = metric('user_tasks_deduplicated_total', task=KEYED)
    first = publish(keyed_task, user, label='course-1')
    second = publish(keyed_task, user, label='course-1')
    assert second.id == first.id
    [row] = rows(KEYED)
    assert (row.task_id, row.concurrency_key, row.state) == (first.id, 'course-1', UserTaskStatus.PENDING)
    assert published.task_ids() == [first.id]
    assert UserTaskStatus.objects.get(task_id=second.id).pk == row.pk  # reachable as for any task
    assert metric('user_tasks_deduplicated_total', task=KEYED) - before == 1
    deduplicated = [(status.task_id, details) for kind, status, details in events if kind == lifecycle.DEDUPLICATED]
    assert deduplicated == [(first.id, {'task': KEYED})]


def test_other_key_user_or_class_is_not_identical(user, other_user, published):
    ids = {publish(keyed_task, user, label='a').id, publish(keyed_task, user, label='b').id,
           publish(keyed_task, other_user, label='a').id, publish(sample_task, user, label='a').id,
           publish(sample_task, user, label='a').id}
    assert len(ids) == 5 and len(published.task_ids()) == 5
    assert sorted((row.concurrency_key or '') for row in rows(KEYED)) == ['a', 'a', 'b']
    assert [row.concurrency_key for row in rows('tests.tasks.sample_task')] == [None, None]


def _succeed(row):
    row.start()
    row.succeed()


def _fail(row):
    row.fail('boom')


def _cancel_waiting(row):
    row.cancel()


def _cancel_running(row):
    row.start()
    row.cancel()  # its work has not stopped yet, but the row is Canceled: no longer active


def _reaped_pending(row):
    UserTaskStatus.objects.filter(pk=row.pk).update(modified=timezone.now() - timedelta(days=2))
    assert reap()['pending_timeout'] == 1


def _reaped_stale(row):
    row.start()
    long_ago = timezone.now() - timedelta(hours=1)
    UserTaskStatus.objects.filter(pk=row.pk).update(heartbeat=long_ago, started=long_ago)
    assert reap()['stale'] == 1


@pytest.mark.parametrize('end', [_succeed, _fail, _cancel_waiting, _cancel_running, _reaped_pending, _reaped_stale])
def test_the_transition_ending_a_row_frees_its_key(user, end):
    first = publish(keyed_task, user, label='k')
    end(UserTaskStatus.objects.get(task_id=first.id))
    ended = UserTaskStatus.objects.get(task_id=first.id)
    assert ended.state in UserTaskStatus.FINAL_STATES and ended.concurrency_key is None
    second = publish(keyed_task, user, label='k')
    assert second.id != first.id
    assert UserTaskStatus.objects.get(task_id=second.id).concurrency_key == 'k'


def test_retrying_and_custom_stages_keep_the_key(user):
    first = publish(keyed_task, user, label='k')
    row = UserTaskStatus.objects.get(task_id=first.id)
    row.start()
    row.set_state('Exporting')
    assert publish(keyed_task, user, label='k').id == first.id
    row.retry()
    assert publish(keyed_task, user, label='k').id == first.id
    assert len(rows(KEYED)) == 1


def test_the_database_refuses_a_second_active_row_with_the_key(user):
    from django.db import IntegrityError
    first = publish(keyed_task, user, label='k')
    with pytest.raises(IntegrityError), transaction.atomic():
        UserTaskStatus.objects.create(user=user, task_id='raw', task_class=KEYED, name='x', total_steps=1,
                                      concurrency_key='k')
    UserTaskStatus.objects.get(task_id=first.id).fail('x')
    UserTaskStatus.objects.create(user=user, task_id='raw', task_class=KEYED, name='x', total_steps=1,
                                  concurrency_key='k')


def test_a_key_with_a_nul_character_is_stored_as_its_digest(user):
    first = publish(keyed_task, user, key='course\x00one')
    stored = UserTaskStatus.objects.get(task_id=first.id).concurrency_key
    assert stored.startswith('sha256:') and '\x00' not in stored
    assert publish(keyed_task, user, key='course\x00one').id == first.id


def test_a_long_key_is_stored_as_its_digest(user):
    key = 'x' * (MAX_KEY_LENGTH + 1)
    first = publish(keyed_task, user, key=key)
    stored = UserTaskStatus.objects.get(task_id=first.id).concurrency_key
    assert stored.startswith('sha256:') and len(stored) <= MAX_KEY_LENGTH
    assert publish(keyed_task, user, key=key).id == first.id
    assert publish(keyed_task, user, key=key[:-1] + 'y').id != first.id


def test_inside_a_transaction_the_duplicate_is_found_and_one_message_sent_on_commit(user, published):
    with transaction.atomic():
        first = publish(keyed_task, user, label='k')
        second = publish(keyed_task, user, label='k')
        assert published.task_ids() == []
    assert second.id == first.id and published.task_ids() == [first.id]
    assert len(rows(KEYED)) == 1


def test_a_rolled_back_publish_leaves_the_key_free(user, published):
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(keyed_task, user, label='k')
        raise RuntimeError('the view failed')
    assert rows(KEYED) == [] and published.task_ids() == []
    assert rows(KEYED) == [] and publish(keyed_task, user, label='k').id in published.task_ids()


def test_canvas_members_are_not_deduplicated(user):
    group(keyed_task.si(user.pk, label='k'), keyed_task.si(user.pk, label='k')).apply_async(queue=UNCONSUMED_QUEUE)
    members = [row for row in rows(KEYED) if not row.is_container]
    assert len(members) == 2 and {row.concurrency_key for row in members} == {None}


def test_a_broker_refusal_frees_the_key(user, monkeypatch):
    from celery import Task

    def refuse(*args, **kwargs):
        raise ConnectionError('broker down')
    with monkeypatch.context() as patch:
        patch.setattr(Task, 'apply_async', refuse)
        with pytest.raises(ConnectionError):
            publish(keyed_task, user, label='k')
    assert rows(KEYED) == []
    assert publish(keyed_task, user, label='k').id == rows(KEYED)[0].task_id


def test_eager_runs_are_admitted_too(eager, user):
    first = keyed_task.apply_async((user.pk,), {'label': 'k'})
    row = UserTaskStatus.objects.get(task_id=first.id)
    assert (row.state, row.concurrency_key) == (UserTaskStatus.SUCCEEDED, None)
    second = keyed_task.apply_async((user.pk,), {'label': 'k'})
    assert second.id != first.id and len(rows(KEYED)) == 2


def test_a_missing_or_unknown_user_is_refused_as_any_publish(user):
    with pytest.raises(TypeError, match='must include the user_id'):
        keyed_task.apply_async((), {'label': 'k'}, queue=UNCONSUMED_QUEUE)
    with pytest.raises(TypeError, match='Invalid user_id: 987654'):
        keyed_task.apply_async((987654,), {'label': 'k'}, queue=UNCONSUMED_QUEUE)
    with pytest.raises(TypeError, match='Invalid user_id: 987654'):
        limited_task.apply_async((987654,), queue=UNCONSUMED_QUEUE)
    assert rows(KEYED) == [] and rows(LIMITED) == []


# -- per-user limits --------------------------------------------------------------------

def test_over_the_limit_raises_and_writes_and_sends_nothing(user, published, events):
    before = metric('user_tasks_rejected_total', task=LIMITED, reason='limit')
    admitted = [publish(limited_task, user).id, publish(limited_task, user).id]
    with pytest.raises(TooManyActiveTasks, match='at most 2 tasks') as raised:
        publish(limited_task, user)
    assert (raised.value.limit, raised.value.task_name) == (2, LIMITED)
    assert [row.task_id for row in rows(LIMITED)] == admitted
    assert published.task_ids() == admitted
    assert metric('user_tasks_rejected_total', task=LIMITED, reason='limit') - before == 1
    assert [details for kind, _, details in events if kind == lifecycle.REJECTED] == [
        {'task': LIMITED, 'reason': 'limit'}]


def test_the_limit_counts_active_rows_of_the_user_and_class(user, other_user):
    first, _ = publish(limited_task, user), publish(limited_task, user)
    publish(limited_task, other_user)  # another user's tasks do not count
    publish(sample_task, user)  # nor other classes
    with pytest.raises(TooManyActiveTasks):
        publish(limited_task, user)
    UserTaskStatus.objects.get(task_id=first.id).fail('x')  # ended rows do not count
    publish(limited_task, user)
    assert len(rows(LIMITED, user)) == 3


def test_the_setting_overrides_the_class_limit(user):
    assert limit_of(limited_task) == 2 and limit_of(sample_task) is None
    with override_settings(USER_TASKS_MAX_ACTIVE_PER_USER={LIMITED: 1, 'tests.tasks.sample_task': 1}):
        publish(limited_task, user)
        with pytest.raises(TooManyActiveTasks, match='at most 1 task of this kind'):
            publish(limited_task, user)
        publish(sample_task, user)
        with pytest.raises(TooManyActiveTasks):
            publish(sample_task, user)
    with override_settings(USER_TASKS_MAX_ACTIVE_PER_USER={LIMITED: None}):
        for _ in range(3):
            publish(limited_task, user)
    assert len(rows(LIMITED)) == 4


def test_an_identical_task_at_the_limit_is_returned_not_refused(user):
    first = publish(guarded_task, user, label='a')
    publish(guarded_task, user, label='b')
    publish(guarded_task, user, label='c')
    assert publish(guarded_task, user, label='a').id == first.id
    with pytest.raises(TooManyActiveTasks):
        publish(guarded_task, user, label='d')


def test_a_rejected_publish_inside_a_transaction_leaves_it_usable(user, published):
    with transaction.atomic():
        publish(limited_task, user)
        publish(limited_task, user)
        with pytest.raises(TooManyActiveTasks):
            publish(limited_task, user)
        publish(sample_task, user)
    assert len(rows(LIMITED)) == 2 and len(published.task_ids()) == 3


# -- arguments kept for a retry ---------------------------------------------------------

def test_retryable_tasks_keep_their_arguments_as_json(user):
    result = flaky_task.apply_async((user.pk,), {'label': 'x', 'failure_flag': None, 'extra': [1, {'a': 2}]},
                                    queue=UNCONSUMED_QUEUE)
    row = UserTaskStatus.objects.get(task_id=result.id)
    assert row.arguments == {'args': [user.pk], 'kwargs': {'label': 'x', 'failure_flag': None, 'extra': [1, {'a': 2}]}}
    assert UserTaskStatus.objects.get(task_id=publish(sample_task, user).id).arguments is None


@pytest.mark.parametrize('value, reason', [
    (object(), 'must be JSON'), ({1, 2}, 'must be JSON'), (float('nan'), 'must be JSON'),
    ('a\x00b', 'NUL character'), ([{'k\x00': 1}], 'NUL character'),
])
def test_arguments_that_are_not_json_are_refused_at_publish(user, published, value, reason):
    before = metric('user_tasks_rejected_total', task='tests.tasks.flaky_task', reason='arguments')
    with pytest.raises(ArgumentsNotStorable, match=reason):
        flaky_task.apply_async((user.pk,), {'label': value}, queue=UNCONSUMED_QUEUE)
    assert rows('tests.tasks.flaky_task') == [] and published.task_ids() == []
    assert metric('user_tasks_rejected_total', task='tests.tasks.flaky_task', reason='arguments') - before == 1


def test_arguments_larger_than_the_bound_are_refused(user, published):
    big = 'x' * 200
    with override_settings(USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES=100):
        with pytest.raises(ArgumentsNotStorable, match=r'more than USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES \(100\)'):
            flaky_task.apply_async((user.pk,), {'label': big}, queue=UNCONSUMED_QUEUE)
        size = len(json.dumps({'args': [user.pk], 'kwargs': {'label': 'ok'}}))
        assert size < 100
        flaky_task.apply_async((user.pk,), {'label': 'ok'}, queue=UNCONSUMED_QUEUE)
    assert len(rows('tests.tasks.flaky_task')) == 1 and len(published.task_ids()) == 1


def test_a_success_drops_the_kept_arguments(user):
    row = UserTaskStatus.objects.get(task_id=flaky_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE).id)
    row.start()
    row.succeed()
    assert UserTaskStatus.objects.get(pk=row.pk).arguments is None and row.arguments is None


# -- statement budgets ------------------------------------------------------------------

def _statements(function):
    with CaptureQueriesContext(connection) as queries:
        function()
    return [query['sql'].split()[0] for query in queries.captured_queries]


@pytest.mark.skipif(connection.vendor == 'mysql',
                    reason='MySQL drivers log a refused statement without its SQL; pinned on SQLite and PostgreSQL')
def test_statement_budgets_of_admitted_publishes(user):
    publish(keyed_task, user, label='warm-up')
    # In autocommit, a keyed publish costs what any publish does: one INSERT ...
    assert _statements(lambda: publish(keyed_task, user, label='k')) == ['INSERT']
    # ... and its duplicate the INSERT the unique key refuses, then the read of the active row.
    assert _statements(lambda: publish(keyed_task, user, label='k')) == ['INSERT', 'SELECT']
    # A limited publish: in one transaction, lock the user's row, count, insert.
    assert _statements(lambda: publish(limited_task, user)) == ['BEGIN', 'SELECT', 'SELECT', 'INSERT', 'COMMIT']
    with transaction.atomic():
        # Inside the caller's transaction: check the user (foreign keys wait for the commit), then
        # insert in a savepoint, so a refused insert leaves the caller's transaction usable.
        assert _statements(lambda: publish(keyed_task, user, label='in-atomic')) == [
            'SELECT', 'SAVEPOINT', 'INSERT', 'RELEASE']
        assert _statements(lambda: publish(limited_task, user)) == [
            'SAVEPOINT', 'SELECT', 'SELECT', 'INSERT', 'RELEASE']


# -- migration 0008 and the metrics' zero series ------------------------------------------

def test_migration_0008_reverses_and_reapplies(user):
    """Additive and reversible: back to 0007 the columns and the constraint are gone; forward again, they return."""
    from django.core.management import call_command
    table = UserTaskStatus._meta.db_table
    publish(sample_task, user)

    def columns():
        with connection.cursor() as cursor:
            described = connection.introspection.get_table_description(cursor, table)
            constraints = connection.introspection.get_constraints(cursor, table)
        return {column.name for column in described}, set(constraints)
    try:
        call_command('migrate', 'user_tasks', '0007_indexes_for_lists_and_purge', verbosity=0)
        names, constraints = columns()
        assert not {'concurrency_key', 'arguments', 'retried_as'} & names
        assert 'usertask_active_key_uniq' not in constraints
        assert UserTaskStatus.objects.count() == 1  # the row survived
    finally:
        call_command('migrate', 'user_tasks', verbosity=0)
    names, constraints = columns()
    assert {'concurrency_key', 'arguments', 'retried_as'} <= names and 'usertask_active_key_uniq' in constraints
    assert UserTaskStatus.objects.get().concurrency_key is None


def test_the_new_counters_are_exported_at_zero_for_every_user_task():
    from tests.celery import app
    from user_tasks.metrics import prometheus
    prometheus.initialise_tasks(app)
    assert REGISTRY.get_sample_value('user_tasks_deduplicated_total', {'task': KEYED}) is not None
    for reason in ('limit', 'arguments'):
        assert REGISTRY.get_sample_value('user_tasks_rejected_total', {'task': LIMITED, 'reason': reason}) is not None


@pytest.mark.django_db(transaction=False)
def test_under_testcase_keyed_and_limited_publishes_behave_as_in_autocommit(user, published):
    first = publish(keyed_task, user, label='k')
    assert publish(keyed_task, user, label='k').id == first.id
    admitted = [publish(limited_task, user).id, publish(limited_task, user).id]
    with pytest.raises(TooManyActiveTasks):
        publish(limited_task, user)
    assert published.task_ids() == [first.id, *admitted]

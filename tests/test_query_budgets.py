"""
Exact SQL statement budgets of the hot paths (docs/performance.rst), so a regression fails the suite.

The second part (from ``statements``) holds the counts first written in ``test_queries.py``,
merged here so every budget is in one file.

Counted on SQLite, where they are the same as on PostgreSQL (``bench/statements.py``
measures both and MariaDB).  The REST list budgets (the same count for 1 and 500 rows)
live with the API tests in ``tests/test_api.py``.
"""
import weakref

import pytest
from celery import group
from celery.signals import task_prerun
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import UNCONSUMED_QUEUE
from tests.tasks import noop_task, sample_task
from user_tasks import signals, user_task_stopped
from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskStatus

# Autocommit, as a web request or a worker runs outside ``ATOMIC_REQUESTS``.
pytestmark = pytest.mark.django_db(transaction=True)


def _count(function):
    with CaptureQueriesContext(connection) as queries:
        result = function()
    return len(queries), result, [query['sql'] for query in queries.captured_queries]


def _publish(user):
    return noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)


def test_publish_is_one_insert(celery_app, protocol, user):
    _publish(user)  # warm-up: the broker connection and Django's caches
    count, result, sql = _count(lambda: _publish(user))
    assert count == 1, sql
    assert sql[0].startswith('INSERT')
    assert UserTaskStatus.objects.get(task_id=result.id).state == UserTaskStatus.PENDING


def test_run_is_start_returning_then_succeed(celery_app, user):
    states = []

    def receiver(sender, status, **kwargs):
        states.append(status.state)
    result = _publish(user)
    user_task_stopped.connect(receiver, dispatch_uid='tests.budget_stopped', weak=False)
    try:
        count, _, sql = _count(lambda: noop_task.apply(args=(user.pk,), task_id=result.id))
    finally:
        user_task_stopped.disconnect(dispatch_uid='tests.budget_stopped')
    # Start the row and load it in one UPDATE ... RETURNING (prerun), succeed it;
    # user_task_stopped gets the loaded row.
    assert count == 2, sql
    assert [s.split()[0] for s in sql] == ['UPDATE', 'UPDATE']
    assert 'RETURNING' in sql[0]
    assert states == [UserTaskStatus.SUCCEEDED]


def test_run_of_a_canceled_task_falls_back_to_load_and_skip(celery_app, user):
    """No row returned: the start reads the row as before, sees it canceled, and the body is skipped."""
    result = _publish(user)
    UserTaskStatus.objects.get(task_id=result.id).cancel()
    count, _, sql = _count(lambda: noop_task.apply(args=(user.pk,), task_id=result.id))
    # The UPDATE ... RETURNING that matched nothing, then the read of the row: canceled, so
    # ``start`` raises before writing and the body is skipped (Celery's Ignore: no success).
    assert count == 2, sql
    assert [s.split()[0] for s in sql] == ['UPDATE', 'SELECT'], sql
    assert UserTaskStatus.objects.get(task_id=result.id).state == UserTaskStatus.CANCELED


def test_run_without_a_row_falls_back_to_create(celery_app, user):
    """An eager run with no publisher row: the UPDATE matches nothing, the row is read, created and started."""
    from celery.utils import uuid
    task_id = uuid()
    count, _, sql = _count(lambda: noop_task.apply(args=(user.pk,), task_id=task_id))
    # The UPDATE ... RETURNING that matched nothing, the read, the creation (in a savepoint),
    # ``start``'s UPDATE, then the success.
    assert [s.split()[0] for s in sql] == ['UPDATE', 'SELECT', 'BEGIN', 'INSERT', 'COMMIT', 'UPDATE', 'UPDATE'], sql
    assert count == 7, sql
    assert UserTaskStatus.objects.get(task_id=task_id).state == UserTaskStatus.SUCCEEDED


def test_started_row_is_built_with_converted_values(celery_app, user):
    """The row the UPDATE ... RETURNING builds equals one read back: datetimes aware, uuid a UUID."""
    result = _publish(user)
    status = UserTaskStatus.start_task(result.id, attempt=1)
    assert status is not None and status._state.adding is False
    loaded = UserTaskStatus.objects.get(task_id=result.id)
    for field in UserTaskStatus._meta.concrete_fields:
        assert getattr(status, field.attname) == getattr(loaded, field.attname), field.name
    assert status.state == UserTaskStatus.IN_PROGRESS and status.attempts == 1
    assert status.started is not None and status.started.tzinfo is not None
    assert type(status.uuid) is type(loaded.uuid)
    assert UserTaskStatus.start_task('no-such-task', attempt=1) is None
    status.cancel()
    assert UserTaskStatus.start_task(result.id, attempt=1) is None


def test_step_without_parent_is_one_update(make_status):
    status = make_status(state=UserTaskStatus.IN_PROGRESS, total_steps=5)
    count, _, sql = _count(status.increment_completed_steps)
    assert count == 1, sql
    assert UserTaskStatus.objects.get(pk=status.pk).completed_steps == 1


def test_step_still_detects_cancellation(make_status):
    status = make_status(state=UserTaskStatus.IN_PROGRESS, total_steps=5)
    UserTaskStatus.objects.filter(pk=status.pk).update(state=UserTaskStatus.CANCELED)

    def step():
        with pytest.raises(TaskCanceledException):
            status.increment_completed_steps()
    count, _, sql = _count(step)
    # As 4.0 the step is counted, then the cancellation raised: one UPDATE ... RETURNING state
    # (MariaDB, without it, reads the state in a second statement).
    assert count == 1, sql
    assert UserTaskStatus.objects.get(pk=status.pk).completed_steps == 1


def test_publish_group_of_ten(celery_app, protocol, user):
    group(noop_task.si(user.pk) for _ in range(2)).apply_async(queue=UNCONSUMED_QUEUE)
    before = UserTaskStatus.objects.count()
    results = []
    count, _, sql = _count(lambda: results.append(
        group(noop_task.si(user.pk) for _ in range(10)).apply_async(queue=UNCONSUMED_QUEUE)))
    # At the first member's publish: the container, then the ten members in one bulk INSERT
    # (in one transaction); the other nine publishes find their rows written.
    assert [s.split()[0] for s in sql] == ['BEGIN', 'INSERT', 'INSERT', 'COMMIT'], sql
    assert count == 4, sql
    assert UserTaskStatus.objects.count() == before + 11
    container = UserTaskStatus.objects.filter(task_class='celery.group').latest('id')
    assert container.is_container and container.total_steps == 10
    members = UserTaskStatus.objects.filter(parent=container)
    # The rows carry the ids of the messages Celery then sent.
    assert set(members.values_list('task_id', flat=True)) == {r.id for r in results[0].results}
    assert container.task_id == results[0].id


def test_group_whose_container_exists_falls_back_to_one_insert_per_member(celery_app, user):
    """A group id already recorded (published again): the members are recorded one by one, as before."""
    from celery.utils import uuid
    group_id = uuid()
    UserTaskStatus.objects.create(task_id=group_id, task_class='celery.group', is_container=True, name='g',
                                  total_steps=3, user=user)
    count, _, sql = _count(lambda: group(noop_task.si(user.pk) for _ in range(3)).apply_async(
        queue=UNCONSUMED_QUEUE, task_id=group_id))
    container = UserTaskStatus.objects.get(task_id=group_id)
    assert UserTaskStatus.objects.filter(parent=container).count() == 3
    # The bulk attempt rolled back (BEGIN, INSERT refused, ROLLBACK), the look-up, one INSERT each.
    assert [s.split()[0] for s in sql].count('INSERT') == 4, sql


def test_group_with_a_chain_member_is_recorded_member_by_member(celery_app, user):
    from celery import chain
    group(noop_task.si(user.pk), chain(noop_task.si(user.pk), noop_task.si(user.pk))).apply_async(
        queue=UNCONSUMED_QUEUE)
    container = UserTaskStatus.objects.get(task_class='celery.group')
    assert container.total_steps == 3
    assert UserTaskStatus.objects.filter(parent=container, is_container=False).count() == 1
    chain_row = UserTaskStatus.objects.get(parent=container, task_class='celery.chain')
    assert UserTaskStatus.objects.filter(parent=chain_row).count() == 2


def test_worker_starts_tasks_after_celerys_django_fixup():
    """After ``worker_init`` the start runs behind the receivers already connected (the fixup's close)."""
    def fixup_close(**kwargs):  # stands for DjangoWorkerFixup.on_task_prerun
        pass
    task_prerun.connect(fixup_close, dispatch_uid='tests.fixup_close', weak=False)
    try:
        signals._start_after_django_fixup()
        receivers = [receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
                     for _, receiver in task_prerun.receivers]
        assert receivers.index(signals.start_user_task) > receivers.index(fixup_close)
    finally:
        task_prerun.disconnect(dispatch_uid='tests.fixup_close')


# -- statement counts on SQLite (formerly tests/test_queries.py) ----------------------------


S = UserTaskStatus


def statements(queries):
    """The SQL statements run, without transaction control (BEGIN/COMMIT/SAVEPOINT)."""
    return [q['sql'] for q in queries.captured_queries
            if not q['sql'].upper().startswith(('SAVEPOINT', 'RELEASE SAVEPOINT', 'ROLLBACK TO SAVEPOINT',
                                                'BEGIN', 'COMMIT'))]


@pytest.mark.django_db(transaction=True)
def test_publish_one_user_task_outside_a_transaction(protocol, user):
    with CaptureQueriesContext(connection) as queries:
        result = sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    assert len(queries) == 1, statements(queries)
    assert queries.captured_queries[0]['sql'].startswith('INSERT')
    assert S.objects.filter(task_id=result.id).exists()


@pytest.mark.django_db
def test_increment_completed_steps_without_parent(make_status):
    status = make_status(total_steps=3)
    with CaptureQueriesContext(connection) as queries:
        status.increment_completed_steps()
    assert len(queries) == 1, statements(queries)


@pytest.mark.django_db(transaction=True)
def test_noop_task_from_prerun_to_success(user):
    result = noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    with CaptureQueriesContext(connection) as queries:
        noop_task.apply((user.pk,), task_id=result.id)  # prerun, body, success, as a worker runs it
    sql = statements(queries)
    # Start and load the row in one UPDATE ... RETURNING, then succeed it.
    assert len(queries) == 2, sql
    assert sql[0].startswith('UPDATE') and 'RETURNING' in sql[0] and sql[1].startswith('UPDATE')
    row = S.objects.get(task_id=result.id)
    assert row.state == S.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_noop_task_without_update_returning_loads_then_starts(user, monkeypatch):
    """Where the database lacks UPDATE ... RETURNING (MariaDB), the run is today's three statements."""
    monkeypatch.setattr('user_tasks.status_sql.can_update_returning', lambda connection: False)
    result = noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    with CaptureQueriesContext(connection) as queries:
        noop_task.apply((user.pk,), task_id=result.id)
    sql = statements(queries)
    assert len(queries) == 3, sql
    assert sql[0].startswith('SELECT') and sql[1].startswith('UPDATE') and sql[2].startswith('UPDATE')
    assert S.objects.get(task_id=result.id).state == S.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_publish_group_of_ten_cold(protocol, user):
    with CaptureQueriesContext(connection) as queries:
        group(sample_task.si(user.pk, label=str(n)) for n in range(10)).apply_async(queue=UNCONSUMED_QUEUE)
    assert S.objects.filter(is_container=False).count() == 10
    assert S.objects.get(is_container=True).total_steps == 10
    assert len(queries) <= 4
    assert len(queries) == MEASURED_GROUP_OF_TEN, "\n".join(q["sql"][:60] for q in queries.captured_queries)


# BEGIN, INSERT the container, INSERT the ten members (one bulk INSERT), COMMIT.
MEASURED_GROUP_OF_TEN = 4


# 30 members: SQLite splits a bulk INSERT past its 999 variables (about 39 rows of this
# table); PostgreSQL and MariaDB send any number in one.
@pytest.mark.parametrize('size', [10, 30])
def test_canvases_publish_in_a_constant_number_of_statements(celery_app, protocol, user, size):
    """A group, a chain and a chord of N user tasks: the same statements for 10 members as for 30."""
    from celery import chain, chord
    canvases = {
        # BEGIN, the container, the members in one bulk INSERT, COMMIT.
        'group': (lambda: group(noop_task.si(user.pk) for _ in range(size)), ['BEGIN', 'INSERT', 'INSERT', 'COMMIT']),
        # The container, then the members in one bulk INSERT (in its own transaction), from the first message.
        'chain': (lambda: chain(noop_task.si(user.pk) for _ in range(size)), ['INSERT', 'BEGIN', 'INSERT', 'COMMIT']),
        # The chord's container (looked up, then created in a savepoint), its body, then the
        # header group as a group is.
        'chord': (lambda: chord([noop_task.si(user.pk) for _ in range(size)], noop_task.si(user.pk)),
                  ['SELECT', 'BEGIN', 'INSERT', 'COMMIT', 'INSERT', 'BEGIN', 'INSERT', 'INSERT', 'COMMIT']),
    }
    for kind, (build, expected) in canvases.items():
        build().apply_async(queue=UNCONSUMED_QUEUE)  # warm-up
        before = UserTaskStatus.objects.count()
        count, _, sql = _count(lambda build=build: build().apply_async(queue=UNCONSUMED_QUEUE))
        assert [s.split()[0] for s in sql] == expected, (kind, sql)
        assert count == len(expected)
        containers = {'group': 1, 'chain': 1, 'chord': 2}[kind]
        assert UserTaskStatus.objects.count() == before + size + containers + (kind == 'chord'), kind

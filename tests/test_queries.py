"""Exact statement counts on SQLite for the hot paths (DESIGN: query budgets)."""
import pytest
from celery import group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import UNCONSUMED_QUEUE
from tests.tasks import noop_task, sample_task
from user_tasks.models import UserTaskStatus

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
    monkeypatch.setattr('user_tasks.models._can_update_returning', lambda connection: False)
    result = noop_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    with CaptureQueriesContext(connection) as queries:
        noop_task.apply((user.pk,), task_id=result.id)
    sql = statements(queries)
    assert len(queries) == 3, sql
    assert sql[0].startswith('SELECT') and sql[1].startswith('UPDATE') and sql[2].startswith('UPDATE')
    assert S.objects.get(task_id=result.id).state == S.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_publish_group_of_ten(protocol, user):
    with CaptureQueriesContext(connection) as queries:
        group(sample_task.si(user.pk, label=str(n)) for n in range(10)).apply_async(queue=UNCONSUMED_QUEUE)
    assert S.objects.filter(is_container=False).count() == 10
    assert S.objects.get(is_container=True).total_steps == 10
    assert len(queries) <= 4
    assert len(queries) == MEASURED_GROUP_OF_TEN, "\n".join(q["sql"][:60] for q in queries.captured_queries)


# BEGIN, INSERT the container, INSERT the ten members (one bulk INSERT), COMMIT.
MEASURED_GROUP_OF_TEN = 4

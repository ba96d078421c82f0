"""
User tasks run by a real prefork worker through a real broker on a real database.

The scenarios that exercise message handling (publish, retry, failure, cancel, groups,
chains, chords) run under message protocol 2 (Celery's default) and protocol 1 (what
edx-platform's Celery app sends), with the worker publishing the same protocol
(``message_protocol`` in conftest.py).

Each test publishes from this process, waits (bounded) until every row it expects has
ended, then checks the final rows exactly and that the worker sent ``user_task_stopped``
exactly once per final row, containers included, with the final state.
"""
import time
from collections import Counter
from uuid import uuid4

import pytest
from celery import chain, chord, group
from django.contrib.auth import get_user_model

from tests.tasks import counting_task, failing_task, marker_task, plain_task, retrying_task, sample_task, stepping_task
from user_tasks import user_task_stopped
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

POLL = 0.1


@pytest.fixture
def task_user(worker):
    """A fresh user per test: the rows of a test are that user's rows."""
    return get_user_model().objects.create(username=f'integration-{uuid4().hex[:12]}')


def _wait_for(description, predicate, timeout):
    """Poll ``predicate`` until it returns a true value; bounded in time and in count."""
    deadline = time.monotonic() + timeout
    value = None
    for _ in range(int(timeout / POLL) + 1):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    pytest.fail(f'timed out after {timeout} s waiting for {description}; last seen: {value!r}')
    return None


def _rows(user):
    return list(UserTaskStatus.objects.filter(user=user).select_related('parent').order_by('id'))


def wait_until_ended(user, count, timeout=60):
    """Wait until ``user`` has ``count`` rows and every one has ended (final and stopped)."""
    def ended():
        rows = _rows(user)
        if len(rows) == count and all(row.finished is not None for row in rows):
            return rows
        return None
    try:
        return _wait_for(f'{count} ended rows', ended, timeout)
    except pytest.fail.Exception:
        summary = [(row.task_class, row.name, row.state, row.finished is not None) for row in _rows(user)]
        pytest.fail(f'expected {count} ended rows within {timeout} s, found {len(summary)}: {summary}')
        return None


def describe(rows):
    """Everything the tests pin down about a set of rows, in a stable, comparable form."""
    return sorted(
        (row.task_class, row.is_container, row.name, row.state, row.completed_steps, row.total_steps,
         row.attempts, row.parent.task_class if row.parent_id else None,
         tuple(sorted(row.artifacts.values_list('name', 'text'))))
        for row in rows
    )


def assert_stopped_once(worker, rows, timeout=15):
    """The worker sent ``user_task_stopped`` exactly once per row, with its final state."""
    expected = {str(row.uuid): row.state for row in rows}
    _wait_for('a user_task_stopped per row', lambda: set(expected) <= {key for key, _ in worker.stops()}, timeout)
    logged = [(key, state) for key, state in worker.stops() if key in expected]
    counts = Counter(key for key, _ in logged)
    assert {key: n for key, n in counts.items() if n != 1} == {}, 'user_task_stopped sent more than once'
    assert dict(logged) == expected


def test_single_task(message_protocol, worker, task_user):
    result = sample_task.delay(task_user.id, label='single', steps=3)

    rows = wait_until_ended(task_user, 1)

    assert describe(rows) == [
        ('tests.tasks.sample_task', False, 'Sample single', 'Succeeded', 3, 3, 1, None,
         (('Output', 'done single'),)),
    ]
    row = rows[0]
    assert row.task_id == result.id
    assert row.started is not None and row.started <= row.finished
    assert result.get(timeout=30) == 'single'
    assert_stopped_once(worker, rows)


def test_retrying_task_counts_attempts_then_succeeds(message_protocol, worker, task_user):
    retrying_task.delay(task_user.id, succeed_on=3)

    rows = wait_until_ended(task_user, 1)

    assert describe(rows) == [
        ('tests.tasks.retrying_task', False, 'Sample task', 'Succeeded', 1, 1, 3, None, ()),
    ]
    assert_stopped_once(worker, rows)


def test_failing_task_ends_failed_with_error_artifact(message_protocol, worker, task_user):
    failing_task.delay(task_user.id, message='the export broke: disk full')

    rows = wait_until_ended(task_user, 1)

    assert describe(rows) == [
        ('tests.tasks.failing_task', False, 'Sample task', 'Failed', 0, 1, 1, None,
         (('Error', 'the export broke: disk full'),)),
    ]
    assert list(UserTaskArtifact.objects.filter(status=rows[0]).values_list('name', 'text')) == [
        ('Error', 'the export broke: disk full')]
    assert_stopped_once(worker, rows)


def test_group_of_twenty(message_protocol, worker, task_user):
    members = [sample_task.s(task_user.id, label=f'g{i}', steps=2) for i in range(20)]
    members[7] = sample_task.s(task_user.id, label='g7', steps=2, user_task_name='Twenty at once')
    result = group(members).apply_async()

    rows = wait_until_ended(task_user, 21)

    children = [('tests.tasks.sample_task', False, f'Sample g{i}', 'Succeeded', 2, 2, 1, 'celery.group',
                 (('Output', f'done g{i}'),)) for i in range(20)]
    assert describe(rows) == sorted(
        children + [('celery.group', True, 'Twenty at once', 'Succeeded', 40, 40, 1, None, ())])
    container = next(row for row in rows if row.is_container)
    assert container.task_id == result.id
    assert {row.parent_id for row in rows if not row.is_container} == {container.pk}
    assert sorted(result.get(timeout=30)) == sorted(f'g{i}' for i in range(20))
    assert_stopped_once(worker, rows)


def test_chain(message_protocol, worker, task_user):
    result = chain(
        sample_task.s(task_user.id, label='first', steps=2),
        sample_task.si(task_user.id, label='second', steps=3, user_task_name='Two steps'),
        plain_task.si(),
    ).apply_async()

    rows = wait_until_ended(task_user, 3)

    assert describe(rows) == sorted([
        ('celery.chain', True, 'Two steps', 'Succeeded', 5, 5, 1, None, ()),
        ('tests.tasks.sample_task', False, 'Sample first', 'Succeeded', 2, 2, 1, 'celery.chain',
         (('Output', 'done first'),)),
        ('tests.tasks.sample_task', False, 'Sample second', 'Succeeded', 3, 3, 1, 'celery.chain',
         (('Output', 'done second'),)),
    ])
    assert result.get(timeout=30) == 'plain'
    assert_stopped_once(worker, rows)


def test_chain_stops_at_a_failed_member(message_protocol, worker, task_user):
    """Celery never runs what follows a failed member: its row ends Canceled, not Pending (ADR 0013)."""
    chain(
        sample_task.s(task_user.id, label='first', steps=1),
        failing_task.si(task_user.id, message='bad OLX'),
        sample_task.si(task_user.id, label='third', steps=2, user_task_name='Import'),
    ).apply_async()

    rows = wait_until_ended(task_user, 4)

    assert describe(rows) == sorted([
        ('celery.chain', True, 'Import', 'Failed', 1, 4, 1, None, (('Error', 'bad OLX'),)),
        ('tests.tasks.sample_task', False, 'Sample first', 'Succeeded', 1, 1, 1, 'celery.chain',
         (('Output', 'done first'),)),
        ('tests.tasks.failing_task', False, 'Sample task', 'Failed', 0, 1, 1, 'celery.chain',
         (('Error', 'bad OLX'),)),
        ('tests.tasks.sample_task', False, 'Sample third', 'Canceled', 0, 2, 1, 'celery.chain', ()),
    ])
    assert_stopped_once(worker, rows)


def test_chord(message_protocol, worker, task_user):
    header = [sample_task.s(task_user.id, label=f'h{i}', steps=1) for i in range(3)]
    body = sample_task.si(task_user.id, label='body', steps=2, user_task_name='Gather')
    result = chord(header)(body)

    rows = wait_until_ended(task_user, 6)

    assert describe(rows) == sorted([
        ('celery.chord', True, 'Gather', 'Succeeded', 5, 5, 1, None, ()),
        ('celery.group', True, 'Sample h0', 'Succeeded', 3, 3, 1, 'celery.chord', ()),
        ('tests.tasks.sample_task', False, 'Sample body', 'Succeeded', 2, 2, 1, 'celery.chord',
         (('Output', 'done body'),)),
    ] + [
        ('tests.tasks.sample_task', False, f'Sample h{i}', 'Succeeded', 1, 1, 1, 'celery.group',
         (('Output', f'done h{i}'),)) for i in range(3)
    ])
    body_row = next(row for row in rows if row.name == 'Sample body')
    assert body_row.task_id == result.id
    assert result.get(timeout=30) == 'body'
    assert_stopped_once(worker, rows)


def test_cancel_waiting_and_running_tasks(message_protocol, worker, task_user, tmp_path):
    """A delayed task canceled before it runs never runs; a running one stops at its next step."""
    marker = str(tmp_path / 'marker.txt')
    waiting = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': marker}, countdown=2)
    running = stepping_task.apply_async(kwargs={'user_id': task_user.pk, 'steps': 100, 'delay': 0.1,
                                                'marker': marker + '.steps'})
    _wait_for('the running task to count a step',
              lambda: UserTaskStatus.objects.filter(task_id=running.id, completed_steps__gte=1).exists(), 30)
    stopped_here = []  # the waiting task's stop is announced by this process, which cancels it
    user_task_stopped.connect(lambda sender, status, **kw: stopped_here.append((status.task_id, status.state)),
                              weak=False, dispatch_uid='test_worker.cancel')
    try:
        assert UserTaskStatus.objects.get(task_id=waiting.id).cancel() is True
        assert UserTaskStatus.objects.get(task_id=running.id).cancel() is True
    finally:
        user_task_stopped.disconnect(dispatch_uid='test_worker.cancel')
    assert stopped_here == [(waiting.id, 'Canceled')]

    rows = wait_until_ended(task_user, 2)

    by_id = {row.task_id: row for row in rows}
    assert by_id[waiting.id].state == by_id[running.id].state == 'Canceled'
    assert by_id[waiting.id].completed_steps == 0
    assert 1 <= by_id[running.id].completed_steps < 100
    _wait_for('the worker to discard the revoked task',
              lambda: f'Discarding revoked task: tests.tasks.marker_task[{waiting.id}]' in worker.log_tail(), 15)
    assert not (tmp_path / 'marker.txt').exists()
    assert_stopped_once(worker, [by_id[running.id]])


def test_five_thousand_steps(worker, task_user):
    counting_task.delay(task_user.id, steps=5000)

    rows = wait_until_ended(task_user, 1, timeout=90)

    # The Counted artifact is what the database held after the last step, before success
    # raised completed_steps to total_steps: no step lost, none counted twice.
    assert describe(rows) == [
        ('tests.tasks.counting_task', False, 'Sample task', 'Succeeded', 5000, 5000, 1, None,
         (('Counted', '5000'),)),
    ]
    assert_stopped_once(worker, rows)

"""
Progress, stage and cancellation of a task whose body holds a transaction open, through a real worker.

The body runs inside ``transaction.atomic()`` (as imports do).  Its status writes go
through the worker's status connection (``user_tasks.status_connection``), so the REST API,
read here on this process's own connection, sees each step and the stage before the body
commits, and a cancel posted through the API is answered at once and seen by the body's
next step inside the block.  Runs on PostgreSQL and on MariaDB (``make test-integration``).
"""
import os
import time
from uuid import uuid4

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.tasks import atomic_row_locked_task, atomic_steps_task, atomic_until_canceled_task
from user_tasks.models import UserTaskStatus
from user_tasks.rules import add_rules

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

API = '/api/tasks/v0/'
POLL = 0.05
MARIADB = settings.DATABASES['default']['ENGINE'].endswith('mysql')


@pytest.fixture
def owner(worker):
    add_rules()
    return get_user_model().objects.create(username=f'atomic-{uuid4().hex[:12]}')


@pytest.fixture
def api(owner):
    client = APIClient()
    client.force_authenticate(owner)
    return client


def _wait_for(description, predicate, timeout):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL)
    pytest.fail(f'timed out after {timeout} s waiting for {description}; last seen: {value!r}')
    return None


def _row(task_id):
    return UserTaskStatus.objects.filter(task_id=task_id).first()


def _detail(api, task_id):
    """The task as the REST API shows it (this process's connection, autocommit)."""
    row = _wait_for('the row of the task', lambda: _row(task_id), 15)
    response = api.get(f'{API}tasks/{row.uuid}/')
    assert response.status_code == 200, response.content
    return response.json()


def _ended(task_id):
    row = _row(task_id)
    return row if row is not None and row.finished is not None else None


def test_steps_are_visible_before_the_body_commits(worker, api, tmp_path):
    gate = str(tmp_path / 'gate')
    result = atomic_steps_task.apply_async(kwargs={'user_id': api.handler._force_user.pk, 'steps': 3, 'gate': gate})
    for step in (1, 2, 3):
        seen = _wait_for(f'step {step} in the REST API',
                         lambda step=step: (lambda d: d if d['completed_steps'] == step else None)(
                             _detail(api, result.id)), 20)
        # The block is still open: the artifact it writes at its end is not there yet.
        assert seen['state'] == UserTaskStatus.IN_PROGRESS and seen['artifacts'] == [], seen
        assert seen['total_steps'] == 3
        open(f'{gate}.{step}', 'w').close()
    row = _wait_for('the task to end', lambda: _ended(result.id), 30)
    assert (row.state, row.completed_steps, row.total_steps) == (UserTaskStatus.SUCCEEDED, 3, 3)
    assert list(row.artifacts.values_list('text', flat=True)) == ['committed with the block']


def test_artifact_inserted_in_the_block_does_not_stall_the_steps(worker, api, tmp_path):
    """
    An artifact inserted inside the block references the status row before the steps.

    PostgreSQL: its key-share lock does not block the steps, still visible at once.
    MariaDB: InnoDB's shared lock on the referenced row would make the status connection
    wait for the block; the step goes through the body's connection instead (visible at
    commit), without any lock wait.
    """
    gate = str(tmp_path / 'gate')
    log_start = worker.log_size()
    user_id = api.handler._force_user.pk
    if MARIADB:
        for step in (1, 2, 3):
            open(f'{gate}.{step}', 'w').close()
    result = atomic_steps_task.apply_async(kwargs={'user_id': user_id, 'steps': 3, 'gate': gate,
                                                   'artifact_first': True})
    if not MARIADB:
        for step in (1, 2, 3):
            _wait_for(f'step {step} in the REST API',
                      lambda step=step: _detail(api, result.id)['completed_steps'] == step, 20)
            open(f'{gate}.{step}', 'w').close()
    started = time.monotonic()
    row = _wait_for('the task to end', lambda: _ended(result.id), 30)
    assert (row.state, row.completed_steps) == (UserTaskStatus.SUCCEEDED, 3)
    assert sorted(row.artifacts.values_list('name', flat=True)) == ['Output', 'Partial']
    log = worker.log_tail(log_start)
    assert 'waited for a lock' not in log, log
    if MARIADB:
        assert time.monotonic() - started < 10


def test_cancel_is_answered_at_once_and_seen_inside_the_block(worker, api, tmp_path):
    gate = str(tmp_path / 'left')
    result = atomic_until_canceled_task.apply_async(kwargs={'user_id': api.handler._force_user.pk, 'gate': gate})
    seen = _wait_for('the stage and two steps in the REST API',
                     lambda: (lambda d: d if d['completed_steps'] >= 2 and d['state'] == 'Importing' else None)(
                         _detail(api, result.id)), 20)
    assert seen['state_text'] == 'Importing'
    uuid = _row(result.id).uuid
    asked = time.monotonic()
    response = api.post(f'{API}tasks/{uuid}/cancel/')
    answered = time.monotonic() - asked
    assert response.status_code == 200, response.content
    # No wait for the body's transaction: the row was never locked by it.
    assert answered < 5, f'the cancel took {answered:.1f} s'
    row = _wait_for('the canceled task to stop', lambda: _ended(result.id), 15)
    took = time.monotonic() - asked
    assert row.state == UserTaskStatus.CANCELED
    assert took < 10, f'the body went on for {took:.1f} s after the cancel'
    with open(gate, encoding='utf-8') as stream:
        assert stream.read() == 'left the block\n'
    # The body's transaction rolled back (TaskCanceledException left the block); the steps
    # committed on the status connection stay.
    assert row.completed_steps >= seen['completed_steps']
    assert os.path.exists(gate)


def test_a_lock_no_signal_tells_of_costs_one_short_wait(worker, api):
    """The body locks its row with a queryset UPDATE: the first step waits out the lock timeout, then follows it."""
    log_start = worker.log_size()
    result = atomic_row_locked_task.apply_async(kwargs={'user_id': api.handler._force_user.pk})
    row = _wait_for('the task to end', lambda: _ended(result.id), 30)
    assert (row.state, row.completed_steps, row.name) == (UserTaskStatus.SUCCEEDED, 1, 'Renamed in the block')
    log = worker.log_tail(log_start)
    assert log.count('waited for a lock') == 1, log

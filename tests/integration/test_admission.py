"""
OEP-3 across processes: simultaneous publishes from two web processes, a real worker, a real database.

Two ``tests/integration/publisher.py`` processes (four threads each, one connection per
thread) publish at the same instant.  One process publishes inside ``transaction.atomic()``
after a read, as a view under ``ATOMIC_REQUESTS`` does, and holds its transaction open
briefly after the publish; the other publishes in autocommit.  On MariaDB the first one runs
InnoDB's REPEATABLE READ: its snapshot predates every other insert, which is what a plain
``COUNT(*)`` would get wrong (removing the locking read makes the limit test fail there, as
removing the user lock does on PostgreSQL).  Each test prints its numbers (``concurrent-publish:`` lines, shown with
``-s``).
"""
import json
import os
import subprocess
import sys
import time
from uuid import uuid4

import pytest
from django.contrib.auth import get_user_model

from tests.integration.conftest import REPO
from tests.integration.test_worker import assert_stopped_once, wait_until_ended
from user_tasks.models import UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

PROCESSES = 2
THREADS = 4
# Each task runs longer than every publish takes (the atomic publishers hold their
# transaction 0.3 s each, and limited ones queue on the user's lock): none ends meanwhile.
SPAWN_TIMEOUT = 60


@pytest.fixture
def task_user(worker):
    return get_user_model().objects.create(username=f'admission-{uuid4().hex[:12]}')


def publish_at_once(worker, tmp_path, task, user, kwargs):
    """Run the publishers, release them together, and return every thread's outcome."""
    ready_dir, go_file = tmp_path / 'ready', tmp_path / 'go'
    ready_dir.mkdir()
    processes = []
    for index in range(PROCESSES):
        spec = {'task': task, 'user_id': user.pk, 'kwargs': kwargs, 'threads': THREADS,
                'atomic': index == 0, 'hold': 0.3, 'ready_dir': str(ready_dir), 'go_file': str(go_file)}
        # The publisher in a transaction uses InnoDB's REPEATABLE READ, where a plain SELECT reads
        # the snapshot its first read took (Django's MySQL default is READ COMMITTED).
        env = dict(worker.env(), USER_TASKS_TEST_MYSQL_ISOLATION='repeatable read' if index == 0 else '')
        processes.append(subprocess.Popen(
            [sys.executable, '-m', 'tests.integration.publisher', json.dumps(spec)], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while len(os.listdir(ready_dir)) < PROCESSES * THREADS:
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                pytest.fail(f'the publishers did not get ready: {[p.communicate(timeout=5) for p in processes]}')
            time.sleep(0.01)
        go_file.write_text('go')
        outcomes = []
        for process in processes:
            out, err = process.communicate(timeout=SPAWN_TIMEOUT)
            assert process.returncode == 0, err
            outcomes += json.loads(out.strip().splitlines()[-1])['outcomes']
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = [outcome for outcome in outcomes if 'error' in outcome]
    assert errors == [], errors
    return outcomes


def ran(marker):
    with open(marker, encoding='utf-8') as stream:
        return [line.strip() for line in stream if line.strip()]


def test_simultaneous_identical_publishes_start_one_task(worker, task_user, tmp_path):
    marker = str(tmp_path / 'marker')
    outcomes = publish_at_once(worker, tmp_path, 'tests.tasks.keyed_task', task_user,
                               {'label': 'course-v1:Org+Demo+2026', 'seconds': 4, 'marker': marker})
    task_ids = {outcome['task_id'] for outcome in outcomes}
    rows = wait_until_ended(task_user, 1)
    print(f'\nconcurrent-publish: {len(outcomes)} simultaneous identical publishes from {PROCESSES} processes '
          f'-> {len(task_ids)} task id(s), {len(rows)} row(s), {len(ran(marker))} task(s) started')
    assert len(outcomes) == PROCESSES * THREADS
    assert task_ids == {rows[0].task_id}
    assert (rows[0].state, rows[0].concurrency_key) == (UserTaskStatus.SUCCEEDED, None)
    assert ran(marker) == ['ran course-v1:Org+Demo+2026']
    assert_stopped_once(worker, rows)
    # Ended, its key is free: the next identical publish starts a new task.
    again = outcomes_of_one(worker, tmp_path, task_user, marker)
    assert again not in task_ids


def outcomes_of_one(worker, tmp_path, user, marker):
    from tests.tasks import keyed_task
    result = keyed_task.apply_async((user.pk,), {'label': 'course-v1:Org+Demo+2026', 'marker': marker})
    rows = wait_until_ended(user, 2)
    assert [row.state for row in rows] == [UserTaskStatus.SUCCEEDED] * 2
    return result.id


def test_simultaneous_publishes_past_the_limit_start_only_the_limit(worker, task_user, tmp_path):
    marker = str(tmp_path / 'marker')
    outcomes = publish_at_once(worker, tmp_path, 'tests.tasks.limited_task', task_user,
                               {'seconds': 4, 'marker': marker})
    admitted = [outcome['task_id'] for outcome in outcomes if 'task_id' in outcome]
    rejected = [outcome['rejected'] for outcome in outcomes if 'rejected' in outcome]
    rows = wait_until_ended(task_user, 2)
    print(f'\nconcurrent-publish: {len(outcomes)} simultaneous publishes, limit 2 per user, from {PROCESSES} '
          f'processes -> {len(admitted)} admitted, {len(rejected)} TooManyActiveTasks, {len(rows)} row(s), '
          f'{len(ran(marker))} task(s) started')
    assert len(admitted) == 2 and len(set(admitted)) == 2
    assert len(rejected) == PROCESSES * THREADS - 2 and all('at most 2 tasks' in text for text in rejected)
    assert sorted(row.task_id for row in rows) == sorted(admitted)
    assert [row.state for row in rows] == [UserTaskStatus.SUCCEEDED] * 2
    assert sorted(ran(marker)) == sorted(f'ran {task_id}' for task_id in admitted)
    assert_stopped_once(worker, rows)


def test_identical_and_limited_at_once(worker, task_user, tmp_path):
    """All three hooks (the Studio example's shape): eight identical publishes start one task, none is refused."""
    outcomes = publish_at_once(worker, tmp_path, 'tests.tasks.guarded_task', task_user,
                               {'label': 'same', 'seconds': 4})
    rows = wait_until_ended(task_user, 1)
    print(f'\nconcurrent-publish: {len(outcomes)} identical publishes of a keyed, limited, retryable task '
          f'-> {len({o.get("task_id") for o in outcomes})} task id(s), {len(rows)} row(s)')
    assert {outcome.get('task_id') for outcome in outcomes} == {rows[0].task_id}
    assert rows[0].state == UserTaskStatus.SUCCEEDED and rows[0].arguments is None

"""
Real faults against a real worker, broker and database (docs/reliability.rst).

Each test breaks something for real (``kill -9`` of a worker child or of a whole worker, a
hard time limit, a cancel, a broker restart, an expired or revoked message, a rolled-back
transaction) and then checks, within a bound, that every row tells the truth: ended
Failed or Canceled with a user-safe message, the task body's visible effects (a marker
file) match, and ``user_task_stopped`` fired exactly once with the final state.

The workers are started here (``workers.py``), not by ``conftest.py``: they need four
children, shortened recovery settings, their own queue, and some are killed.  The
measured times to recovery are printed as ``[fault] ...`` lines (run with ``-s``).
"""
import os
import time
import tracemalloc
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery import group
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from kombu import pools as kombu_pools

from tests import settings as test_settings
from tests.celery import app as celery_app
from tests.integration.workers import FaultWorker, PrivateRedis, alive, wait_for
from tests.tasks import marker_task, noop_task, sleepy_task, stepping_task, time_limited_task
from user_tasks import recovery, user_task_stopped
from user_tasks.conf import settings as ut_settings
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.retention import purge

S = UserTaskStatus
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]

# Shortened recovery settings (docs/settings.rst), the same in the workers and in this process.
HEARTBEAT = 0.5
STALE_AFTER = 3.0
PENDING_TIMEOUT = 6.0
REAP_PERIOD = 1.0
TERMINATE_AFTER = 1
WORKER_ENV = {
    'USER_TASKS_TEST_HEARTBEAT_INTERVAL': str(HEARTBEAT),
    'USER_TASKS_TEST_STALE_AFTER': str(STALE_AFTER),
    'USER_TASKS_TEST_PENDING_TIMEOUT': str(PENDING_TIMEOUT),
    'USER_TASKS_TEST_TERMINATE_AFTER': f'{{"tests.tasks.sleepy_task": {TERMINATE_AFTER}}}',
}
RUN = uuid.uuid4().hex[:8]
QUEUE = f"{os.environ.get('USER_TASKS_TEST_QUEUE', 'user_tasks_integration')}_faults_{os.getpid()}_{RUN}"
POLL = 0.05

_stops = {'log': None}


def record(name, seconds, bound=None):
    """Print one measured time to recovery."""
    print(f'\n[fault] {name}: {seconds:.2f} s' + (f' (bound {bound:.1f} s)' if bound else ''))




def row(task_id):
    return S.objects.filter(task_id=task_id).first()


def ended(task_id):
    """The row of ``task_id`` once it is final and its work has stopped, else None."""
    status = row(task_id)
    return status if status is not None and status.finished is not None else None


def errors(status):
    return list(status.artifacts.filter(name='Error').values_list('text', flat=True))


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as stream:
        return stream.read().splitlines()


def started_pid(marker, timeout=20):
    """Wait until the task body wrote ``started PID`` to its marker; return the child's pid."""
    line = wait_for('the task body to start',
                    lambda: next((text for text in lines(marker) if text.startswith('started')), None), timeout)
    return int(line.split()[1])


def stops_of(worker, status):
    return [state for key, state in worker.stops() if key == str(status.uuid)]


def assert_stopped_once(worker, status, state, timeout=10):
    """``user_task_stopped`` fired exactly once for ``status``, with ``state``."""
    wait_for(f'user_task_stopped for {status.task_id}', lambda: stops_of(worker, status), timeout)
    time.sleep(0.3)  # a duplicate would come right after the first
    assert stops_of(worker, status) == [state]


def reap_until(description, predicate, timeout, period=REAP_PERIOD):
    """A beat-like loop: run the reaper every ``period`` seconds until ``predicate`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / period) + 2):
        recovery.reap()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(period)
    pytest.fail(f'timed out after {timeout} s of reaping for {description}')
    return None


def _record_stop(sender, status=None, **kwargs):
    """Stops announced in this process (cancel of a waiting task, the reaper) go to the same log."""
    if _stops['log']:
        fd = os.open(_stops['log'], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f'{status.uuid}\t{status.state}\t{os.getpid()}\n'.encode())
        finally:
            os.close(fd)


@contextmanager
def logging_stops_to(worker):
    saved, _stops['log'] = _stops['log'], worker.stopped_log
    try:
        yield worker
    finally:
        _stops['log'] = saved


@contextmanager
def broker(url):
    """Point this process's Celery app at another broker (and back), dropping pooled connections."""
    def reset():
        # kombu keeps pools in a process-wide registry keyed by connection: closing ours
        # without clearing it would hand the same closed pool to every later test.
        kombu_pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        celery_app.conf.broker_url = saved
        reset()


@pytest.fixture(scope='module')
def fault_settings(django_db_setup):
    """This process publishes to the faults queue and reaps/cancels with the shortened settings."""
    saved_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = QUEUE
    ut_settings.USER_TASKS_STALE_AFTER = timedelta(seconds=STALE_AFTER)
    ut_settings.USER_TASKS_PENDING_TIMEOUT = timedelta(seconds=PENDING_TIMEOUT)
    ut_settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sleepy_task': TERMINATE_AFTER}
    user_task_stopped.connect(_record_stop, dispatch_uid='tests.integration.test_faults', weak=False)
    yield
    user_task_stopped.disconnect(dispatch_uid='tests.integration.test_faults')
    for name in ('USER_TASKS_STALE_AFTER', 'USER_TASKS_PENDING_TIMEOUT', 'USER_TASKS_TERMINATE_AFTER'):
        delattr(ut_settings, name)
    celery_app.conf.task_default_queue = saved_queue


def _new_worker(directory, name, queue=QUEUE, **options):
    return FaultWorker(str(directory), f'{name}_{os.getpid()}_{RUN}', queue,
                       django_settings.DATABASES['default']['NAME'], **options)


def _drop_queue(queue):
    try:
        with celery_app.connection_for_write() as connection:
            celery_app.amqp.queues[queue](connection.default_channel).delete()
    except Exception as exc:
        print(f'could not delete the queue {queue}: {exc!r}')


@pytest.fixture(scope='module')
def fault_worker(integration_services, fault_settings, django_db_blocker, tmp_path_factory):
    """A prefork worker with four children and the shortened settings, on the faults queue."""
    worker = _new_worker(tmp_path_factory.mktemp('faults'), 'ut_faults', concurrency=4, env=WORKER_ENV)
    worker.start()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
        _drop_queue(QUEUE)


@pytest.fixture
def worker(fault_worker):
    """The module's worker; this test's stops are logged to its file, and its log shows on failure."""
    start = os.path.getsize(fault_worker.log_path)
    with logging_stops_to(fault_worker):
        yield fault_worker
    with open(fault_worker.log_path, 'rb') as stream:  # printed at teardown: shown only when the test fails
        stream.seek(max(start, os.path.getsize(fault_worker.log_path) - 20000))
        print('--- worker log during this test ---\n' + stream.read().decode('utf-8', 'replace'))


@pytest.fixture
def task_user(fault_settings):
    return get_user_model().objects.create(username=f'faults-{uuid.uuid4().hex[:12]}')


@pytest.fixture
def marker(tmp_path):
    return str(tmp_path / 'marker.txt')


# -- a worker killed ------------------------------------------------------------------------

def test_kill_9_worker_child_mid_task_fails_it_within_10_s(worker, task_user, marker):
    result = sleepy_task.apply_async(kwargs={'user_id': task_user.pk, 'seconds': 60, 'marker': marker})
    pid = started_pid(marker)
    assert row(result.id).state == S.IN_PROGRESS
    killed = time.monotonic()
    os.kill(pid, 9)
    status = wait_for('the row of the killed task to end', lambda: ended(result.id), 10)
    took = time.monotonic() - killed
    record('kill -9 worker child -> Failed', took, 10)
    assert status.state == S.FAILED
    assert errors(status) == [str(recovery.WORKER_LOST_MESSAGE)]
    assert 'done' not in lines(marker)
    assert_stopped_once(worker, status, S.FAILED)


def test_kill_9_whole_worker_failed_by_the_reaper(fault_settings, task_user, marker, tmp_path):
    """The heartbeat keeps a long task alive past the stale threshold; after kill -9 the reaper ends it."""
    doomed = _new_worker(tmp_path, 'ut_faults_doomed', queue=f'{QUEUE}_doomed', concurrency=1, env=WORKER_ENV)
    doomed.start()
    try:
        doomed.wait_ready()
        with logging_stops_to(doomed):
            result = sleepy_task.apply_async(kwargs={'user_id': task_user.pk, 'seconds': 120, 'marker': marker},
                                             queue=doomed.queue)
            started_pid(marker)
            first_beat = row(result.id).heartbeat
            # Alive for longer than the stale threshold, with the reaper running: not reaped.
            alive_until = time.monotonic() + STALE_AFTER + 2 * REAP_PERIOD
            for _ in range(int((STALE_AFTER + 2 * REAP_PERIOD) / REAP_PERIOD) + 2):
                assert not any(recovery.reap().values()), doomed.log_tail()
                if time.monotonic() > alive_until:
                    break
                time.sleep(REAP_PERIOD)
            status = row(result.id)
            assert status.state == S.IN_PROGRESS and status.heartbeat > first_beat

            doomed.kill()
            killed = time.monotonic()
            bound = STALE_AFTER + REAP_PERIOD
            status = reap_until('the row of the killed worker to end', lambda: ended(result.id), bound + 5)
            took = time.monotonic() - killed
            record('kill -9 whole worker -> Failed by the reaper', took, bound)
            assert took <= bound + 0.5, f'recovered after {took:.2f} s, bound {bound} s'
            assert status.state == S.FAILED
            assert errors(status) == [str(recovery.STALE_MESSAGE)]
            assert 'done' not in lines(marker)
            assert_stopped_once(doomed, status, S.FAILED)
    finally:
        doomed.stop()
        _drop_queue(doomed.queue)


def test_hard_time_limit_fails_the_task(worker, task_user, marker):
    result = time_limited_task.apply_async(kwargs={'user_id': task_user.pk, 'seconds': 60, 'marker': marker})
    pid = started_pid(marker)
    began = time.monotonic()
    status = wait_for('the time-limited task to end', lambda: ended(result.id), 15)
    record('hard time limit (2 s) -> Failed, after the body started', time.monotonic() - began)
    assert status.state == S.FAILED
    assert errors(status) == [str(recovery.TIME_LIMIT_MESSAGE)]
    assert 'done' not in lines(marker)
    wait_for('the killed child to be gone', lambda: not alive(pid), 10)
    assert_stopped_once(worker, status, S.FAILED)


# -- cancel --------------------------------------------------------------------------------

def test_cancel_pending_task_never_runs_its_body(worker, task_user, marker):
    result = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': marker}, countdown=2)
    wait_for('the worker to hold the delayed task', lambda: result.id in worker.log_tail(), 10)
    status = row(result.id)
    assert status.state == S.PENDING
    assert status.cancel() is True
    assert ended(result.id).state == S.CANCELED
    # Past its countdown the worker discards the revoked message.
    wait_for('the worker to discard the revoked task',
             lambda: f'Discarding revoked task: tests.tasks.marker_task[{result.id}]' in worker.log_tail(), 15)
    time.sleep(0.5)
    assert not os.path.exists(marker)
    status = row(result.id)
    assert status.state == S.CANCELED and status.completed_steps == 0
    assert_stopped_once(worker, status, S.CANCELED)


def test_cancel_running_task_stops_at_its_next_step(worker, task_user, marker):
    delay = 0.2
    result = stepping_task.apply_async(kwargs={'user_id': task_user.pk, 'steps': 100, 'delay': delay,
                                               'marker': marker})
    wait_for('two steps', lambda: 'step 2' in lines(marker), 20)
    canceled = time.monotonic()
    assert row(result.id).cancel() is True
    status = wait_for('the canceled task to stop', lambda: ended(result.id), 10)
    took = time.monotonic() - canceled
    record('cancel running (cooperative) -> stopped', took, delay + 2)
    assert took < delay + 2
    assert status.state == S.CANCELED
    steps_done = [text for text in lines(marker) if text.startswith('step')]
    time.sleep(3 * delay)
    steps_now = [text for text in lines(marker) if text.startswith('step')]
    assert steps_now == steps_done, 'the body went on after the cancel'
    assert 'done' not in lines(marker)
    # As 4.0, the step during which the cancel arrived is counted, then the task raised.
    assert status.completed_steps == len(steps_done) + 1 < 100
    assert_stopped_once(worker, status, S.CANCELED)


def test_cancel_running_task_without_progress_calls_is_terminated(worker, task_user, marker):
    result = sleepy_task.apply_async(kwargs={'user_id': task_user.pk, 'seconds': 60, 'marker': marker})
    pid = started_pid(marker)
    canceled = time.monotonic()
    assert row(result.id).cancel() is True
    assert row(result.id).finished is None  # still running: no progress call can stop it
    status = wait_for('the canceled task to be terminated', lambda: ended(result.id), TERMINATE_AFTER + 10)
    took = time.monotonic() - canceled
    record(f'cancel running + terminate after {TERMINATE_AFTER} s -> stopped', took, TERMINATE_AFTER + 10)
    assert took >= TERMINATE_AFTER
    assert status.state == S.CANCELED and not errors(status)
    wait_for('the terminated child to be gone', lambda: not alive(pid), 10)
    assert 'done' not in lines(marker)
    assert_stopped_once(worker, status, S.CANCELED)


# -- revoked and expired messages ----------------------------------------------------------------

def test_revoked_task_ends_canceled(worker, task_user, marker):
    result = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': marker}, countdown=2)
    celery_app.control.revoke(result.id)
    status = wait_for('the revoked task to end', lambda: ended(result.id), 15)
    assert status.state == S.CANCELED
    assert not os.path.exists(marker)
    assert_stopped_once(worker, status, S.CANCELED)


def test_task_expired_before_it_ran_ends_failed(worker, task_user, marker):
    result = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': marker},
                                     expires=timezone.now() - timedelta(seconds=1))
    status = wait_for('the expired task to end', lambda: ended(result.id), 15)
    assert status.state == S.FAILED
    assert errors(status) == ['The task expired before it ran.']
    assert not os.path.exists(marker)
    assert_stopped_once(worker, status, S.FAILED)


# -- transaction-safe publishing --------------------------------------------------------------------

def test_rolled_back_publish_leaves_no_row_and_never_runs(worker, task_user, tmp_path):
    rolled_back, committed = str(tmp_path / 'rolled-back.txt'), str(tmp_path / 'committed.txt')
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            lost = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': rolled_back})
            raise RuntimeError('roll back')
    # A task published after it runs to the end; the rolled-back one never arrives.
    after = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': committed})
    wait_for('the task published after the rollback', lambda: ended(after.id), 20)
    time.sleep(0.5)
    assert row(lost.id) is None
    assert not os.path.exists(rolled_back)
    assert list(S.objects.filter(user=task_user).values_list('task_id', flat=True)) == [after.id]


@pytest.mark.parametrize('on_commit', [True, False], ids=['deferred', 'sent-at-once'])
def test_committed_publish_tracked_exactly_once(worker, task_user, marker, on_commit):
    """Sent at once (``USER_TASKS_PUBLISH_ON_COMMIT = False``), the worker starts before the commit."""
    ut_settings.USER_TASKS_PUBLISH_ON_COMMIT = on_commit
    try:
        with transaction.atomic():
            result = marker_task.apply_async(kwargs={'user_id': task_user.pk, 'marker': marker})
            time.sleep(1.5)  # a message sent now is being worked on already
    finally:
        del ut_settings.USER_TASKS_PUBLISH_ON_COMMIT
    status = wait_for('the committed task to end', lambda: ended(result.id), 20)
    assert status.state == S.SUCCEEDED
    assert S.objects.filter(user=task_user).count() == 1
    assert lines(marker) == ['ran']
    assert_stopped_once(worker, status, S.SUCCEEDED)


# -- many groups at once -----------------------------------------------------------------------------

def test_200_groups_of_10_quick_children_each_succeed_exactly_once(worker, task_user):
    groups, size = 200, 10
    published = time.monotonic()
    results = [group(noop_task.s(user_id=task_user.pk, user_task_name=f'group {n}') for _ in range(size)).apply_async()
               for n in range(groups)]
    parents = {result.id for result in results}
    record(f'{groups} groups of {size}: published', time.monotonic() - published)

    def all_parents_ended():
        done = S.objects.filter(task_id__in=parents, finished__isnull=False).count()
        return done == groups

    wait_for(f'{groups} groups to end', all_parents_ended, 120, poll=0.5)
    record(f'{groups} groups of {size} on 4 children: all ended', time.monotonic() - published)
    containers = list(S.objects.filter(task_id__in=parents))
    assert {(c.state, c.completed_steps, c.total_steps, c.is_container) for c in containers} == {
        (S.SUCCEEDED, size, size, True)}
    children = S.objects.filter(parent__in=containers)
    assert children.count() == groups * size
    assert set(children.values_list('state', 'completed_steps', 'total_steps').distinct()) == {(S.SUCCEEDED, 1, 1)}
    wait_for('a stop per row', lambda: len(worker.stops()) and
             {str(c.uuid) for c in containers} <= {key for key, _ in worker.stops()}, 15)
    time.sleep(0.3)
    logged = [state for key, state in worker.stops() if key in {str(c.uuid) for c in containers}]
    assert logged == [S.SUCCEEDED] * groups, 'a parent was announced more or less than once'


# -- a broker restart ---------------------------------------------------------------------------------

# Broker-agnostic (the test runs its own private Redis as the broker): one combo is enough.
@pytest.mark.skipif(test_settings.BROKER_KIND != 'redis',
                    reason='runs its own private Redis, whatever the broker: run in the postgres+redis combo only')
def test_broker_restart_loses_no_row_and_leaves_none_stuck(fault_settings, task_user, tmp_path):
    redis = PrivateRedis(str(tmp_path)).start()
    queue = f'{QUEUE}_restart'
    restarted = None
    with broker(redis.url):
        flaky = _new_worker(tmp_path, 'ut_faults_restart', queue=queue, concurrency=2, env=WORKER_ENV,
                            broker_url=redis.url)
        flaky.start()
        try:
            flaky.wait_ready()
            with logging_stops_to(flaky):
                markers = {}

                def publish(task, **kwargs):
                    name = str(tmp_path / f'marker-{len(markers)}.txt')
                    result = task.apply_async(kwargs=dict(kwargs, user_id=task_user.pk, marker=name), queue=queue)
                    markers[result.id] = name
                    return result

                long_ones = [publish(stepping_task, steps=15, delay=0.2) for _ in range(2)]
                waiting = [publish(marker_task) for _ in range(4)]
                wait_for('both long tasks running',
                         lambda: all(row(r.id).state == S.IN_PROGRESS for r in long_ones), 20)

                redis.kill()
                down = time.monotonic()
                before = S.objects.filter(user=task_user).count()
                with pytest.raises(Exception):
                    marker_task.apply_async(kwargs={'user_id': task_user.pk}, queue=queue)
                assert time.monotonic() - down < 15, 'a publish to a dead broker must fail, not hang'
                assert S.objects.filter(user=task_user).count() == before, 'a publish that raised left a row'
                assert not S.objects.filter(user=task_user, state=S.PENDING).exclude(
                    task_id__in=[r.id for r in waiting]).exists()

                restarted = PrivateRedis(str(tmp_path))
                restarted.port, restarted.url = redis.port, redis.url
                restarted.start()
                after = [publish(marker_task) for _ in range(2)]
                wait_for('the tasks published after the restart', lambda: all(ended(r.id) for r in after), 45)

                everything = long_ones + waiting + after
                reap_until('every row to end', lambda: all(ended(r.id) for r in everything), PENDING_TIMEOUT + 20)
                record('broker restart: every row ended', time.monotonic() - down)
                rows = {r.id: row(r.id) for r in everything}
                assert S.objects.filter(user=task_user).count() == len(everything), 'a row was lost or added'
                for result in long_ones + after:
                    assert rows[result.id].state == S.SUCCEEDED, rows[result.id].state
                for result in waiting:
                    status = rows[result.id]
                    if status.state == S.SUCCEEDED:
                        assert lines(markers[result.id]) == ['ran']
                    else:  # its message died with the broker: failed after the pending timeout
                        assert status.state == S.FAILED, status.state
                        assert errors(status) == [str(recovery.PENDING_MESSAGE)]
                        assert not os.path.exists(markers[result.id])
                assert any(rows[r.id].state == S.FAILED for r in waiting), 'no message was lost: nothing proven'
                for status in rows.values():
                    assert_stopped_once(flaky, status, status.state)
        finally:
            flaky.stop()
            redis.kill()
            if restarted is not None:
                restarted.kill()


# -- purge ---------------------------------------------------------------------------------------------

def _bulk_rows(user, count, state, media, tag, **fields):
    """``count`` rows in ``state``, each with an artifact file on disk; returns their file paths."""
    when = timezone.now() - timedelta(days=60)
    statuses = S.objects.bulk_create(
        [S(user=user, task_id=f'{tag}-{RUN}-{n}', task_class='tests.tasks.marker_task', name=tag, total_steps=1,
           state=state, **fields) for n in range(count)], batch_size=2000)
    if not statuses or statuses[0].pk is None:  # MariaDB returns no ids from a bulk insert
        statuses = list(S.objects.filter(task_id__startswith=f'{tag}-{RUN}-').order_by('id'))
    S.objects.filter(task_id__startswith=f'{tag}-{RUN}-').update(modified=when)
    directory = os.path.join(media, 'user_tasks', tag)
    os.makedirs(directory, exist_ok=True)
    paths, artifacts = [], []
    for status in statuses:
        relative = f'user_tasks/{tag}/{status.pk}.txt'
        with open(os.path.join(media, relative), 'w', encoding='utf-8') as stream:
            stream.write('x')
        paths.append(os.path.join(media, relative))
        artifacts.append(UserTaskArtifact(status=status, file=relative))
    UserTaskArtifact.objects.bulk_create(artifacts, batch_size=2000)
    return paths


def _purge_peak():
    tracemalloc.start()
    try:
        counts = purge()
        return counts, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_purge_of_20000_rows_with_files(task_user, tmp_path, settings):
    settings.MEDIA_ROOT = media = str(tmp_path)
    old_finished = {'finished': timezone.now() - timedelta(days=60)}
    small = _bulk_rows(task_user, 2000, S.SUCCEEDED, media, 'small', **old_finished)
    _, small_peak = _purge_peak()
    assert not any(os.path.exists(p) for p in small)

    doomed = _bulk_rows(task_user, 20000, S.SUCCEEDED, media, 'old', **old_finished)
    live = (_bulk_rows(task_user, 20, S.IN_PROGRESS, media, 'running', started=old_finished['finished'])
            + _bulk_rows(task_user, 20, S.PENDING, media, 'pending')
            + _bulk_rows(task_user, 20, S.CANCELED, media, 'canceled-running', started=old_finished['finished']))
    began = time.monotonic()
    counts, peak = _purge_peak()
    record('purge of 20,000 rows with files', time.monotonic() - began)
    print(f'[fault] purge tracemalloc peak: 2,000 rows {small_peak / 1e6:.2f} MB, 20,000 rows {peak / 1e6:.2f} MB')
    assert counts == {'status': 20000, 'artifact': 20000, 'file': 20000}
    assert not any(os.path.exists(p) for p in doomed)
    assert all(os.path.exists(p) for p in live)
    assert S.objects.filter(user=task_user).count() == 60
    assert UserTaskArtifact.objects.filter(status__user=task_user).count() == 60
    # Memory is flat: ten times the rows, not ten times the memory (batches of 1,000).
    assert peak < 1.5 * small_peak + 512 * 1024, (small_peak, peak)


# -- delete of a running task (docs/reliability.rst) ---------------------------------------------------------

def _delete_through_the_api(status):
    """The owner's REST DELETE, as a client sends it (``add_rules``: the owner may delete)."""
    from rest_framework.test import APIClient

    from user_tasks.rules import add_rules
    add_rules()
    client = APIClient()
    client.force_authenticate(status.user)
    response = client.delete(f'/api/tasks/v0/tasks/{status.uuid}/')
    assert response.status_code == 204, response.content


def test_delete_of_a_running_task_stops_it_at_its_next_step(worker, task_user, marker):
    from user_tasks.exceptions import TaskCanceledException
    delay = 0.2
    log_start = os.path.getsize(worker.log_path)
    result = stepping_task.apply_async(kwargs={'user_id': task_user.pk, 'steps': 100, 'delay': delay,
                                               'marker': marker})
    wait_for('two steps', lambda: 'step 2' in lines(marker), 20)
    deleted = time.monotonic()
    _delete_through_the_api(row(result.id))
    assert row(result.id) is None
    wait_for('the deleted task to stop', lambda: result.ready(), 10)
    record('delete running (cooperative) -> stopped', time.monotonic() - deleted, delay + 2)
    assert isinstance(result.result, TaskCanceledException), result.result
    steps_done = [text for text in lines(marker) if text.startswith('step')]
    time.sleep(3 * delay)
    assert [text for text in lines(marker) if text.startswith('step')] == steps_done, 'the body went on'
    assert 'done' not in lines(marker) and len(steps_done) < 100
    assert row(result.id) is None  # nothing written back after the delete
    with open(worker.log_path, 'rb') as stream:  # this test's part of the worker log
        stream.seek(log_start)
        log = stream.read().decode('utf-8', 'replace')
    assert f'The task {result.id} has been deleted' in log
    assert 'IntegrityError' not in log


def test_delete_of_a_running_task_without_progress_calls_terminates_it(worker, task_user, marker):
    result = sleepy_task.apply_async(kwargs={'user_id': task_user.pk, 'seconds': 60, 'marker': marker})
    pid = started_pid(marker)
    deleted = time.monotonic()
    _delete_through_the_api(row(result.id))
    assert row(result.id) is None
    wait_for('the deleted task to be terminated', lambda: not alive(pid), TERMINATE_AFTER + 10)
    took = time.monotonic() - deleted
    record(f'delete running + terminate after {TERMINATE_AFTER} s -> stopped', took, TERMINATE_AFTER + 10)
    assert took >= TERMINATE_AFTER
    assert 'done' not in lines(marker)
    assert row(result.id) is None

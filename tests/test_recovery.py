"""
Recovery, cancellation and retention edge cases on SQLite (docs/reliability.rst).

The same mechanisms are proven against a real worker, broker and database in
``tests/integration/test_faults.py``; here each rule is pinned down on its own.
"""
import re
import tracemalloc
from datetime import timedelta
from unittest import mock

import pytest
from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.tasks import marker_task
from user_tasks import recovery, signals
from user_tasks.conf import settings as ut_settings
from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.retention import purge
from user_tasks.tasks import terminate_canceled_task

pytestmark = pytest.mark.django_db

S = UserTaskStatus


def db(status):
    return S.objects.get(pk=status.pk)


def age(status, **delta):
    """Make every timestamp of ``status`` older by ``delta`` (in the DB)."""
    past = timezone.now() - timedelta(**delta)
    S.objects.filter(pk=status.pk).update(modified=past, heartbeat=None, started=None)
    return past


@pytest.fixture
def revoke():
    with mock.patch('user_tasks.signals.celery_app') as app:
        yield app.control.revoke


@pytest.fixture
def short_settings():
    """Shortened recovery thresholds, as the fault tests use."""
    ut_settings.USER_TASKS_STALE_AFTER = timedelta(seconds=60)
    ut_settings.USER_TASKS_PENDING_TIMEOUT = timedelta(seconds=120)
    yield
    del ut_settings.USER_TASKS_STALE_AFTER
    del ut_settings.USER_TASKS_PENDING_TIMEOUT


# -- touch (the heartbeat's one UPDATE) --------------------------------------------------

class TestTouch:

    def test_one_update_for_all_running_rows(self, make_status):
        running = [make_status(), make_status(), make_status(state='Exporting')]
        for status in running[:2]:
            status.start()
        then = timezone.now() + timedelta(seconds=5)
        with CaptureQueriesContext(connection) as queries:
            assert recovery.touch([s.task_id for s in running], now=then) == 3
        assert len(queries) == 1
        assert all(db(s).heartbeat == then for s in running)

    @pytest.mark.parametrize('state', [S.PENDING, S.RETRYING, S.SUCCEEDED, S.FAILED])
    def test_waiting_and_ended_rows_untouched(self, make_status, state):
        status = make_status(state=state, finished=None if state in S.WAITING_STATES else timezone.now())
        assert recovery.touch([status.task_id]) == 0
        assert db(status).heartbeat is None

    def test_canceled_row_still_running_is_touched(self, make_status, revoke):
        """Its work has not stopped yet: without a heartbeat the reaper would end it too early."""
        status = make_status()
        status.start()
        assert status.cancel() is True
        assert recovery.touch([status.task_id]) == 1

    def test_no_ids_no_query(self):
        with CaptureQueriesContext(connection) as queries:
            assert recovery.touch([]) == 0
        assert len(queries) == 0

    def test_heartbeat_thread_touches_the_active_requests_until_stopped(self):
        """The thread passes the ids of the worker's active requests to ``touch``, every interval."""
        calls = []
        touched = mock.Mock(side_effect=lambda ids: calls.append(set(ids)))
        active = {mock.Mock(id='a'), mock.Mock(id='b')}
        with mock.patch('celery.worker.state.active_requests', active), \
                mock.patch('user_tasks.recovery.touch', touched), \
                mock.patch('user_tasks.recovery.close_old_connections'):
            beat = recovery.Heartbeat(interval=0.02)
            beat.start()
            for _ in range(250):
                if len(calls) >= 3:
                    break
                beat.stopping.wait(0.02)
            beat.stop()
            beat.join(5)
        assert not beat.is_alive()
        assert len(calls) >= 3 and all(ids == {'a', 'b'} for ids in calls)

    def test_heartbeat_survives_a_failing_touch(self):
        failures = mock.Mock(side_effect=RuntimeError('database down'))
        with mock.patch('celery.worker.state.active_requests', {mock.Mock(id='a')}), \
                mock.patch('user_tasks.recovery.touch', failures), \
                mock.patch('user_tasks.recovery.close_old_connections'):
            beat = recovery.Heartbeat(interval=0.02)
            beat.start()
            for _ in range(250):
                if failures.call_count >= 2:
                    break
                beat.stopping.wait(0.02)
            assert beat.is_alive()
            beat.stop()
            beat.join(5)
        assert failures.call_count >= 2


# -- reap ----------------------------------------------------------------------------------

class TestReap:

    def test_stale_running_row_failed_with_user_safe_message(self, make_status, short_settings, stopped,
                                                             django_capture_on_commit_callbacks):
        status = make_status()
        status.start()
        S.objects.filter(pk=status.pk).update(heartbeat=timezone.now() - timedelta(seconds=61))
        with django_capture_on_commit_callbacks(execute=True):
            assert recovery.reap()['stale'] == 1
        row = db(status)
        assert row.state == S.FAILED and row.finished is not None
        assert list(row.artifacts.values_list('name', 'text')) == [('Error', str(recovery.STALE_MESSAGE))]
        assert [c['db_state'] for c in stopped.for_task(status.task_id)] == [S.FAILED]

    def test_fresh_heartbeat_keeps_an_old_row_alive(self, make_status, short_settings):
        status = make_status()
        status.start()
        S.objects.filter(pk=status.pk).update(started=timezone.now() - timedelta(hours=5),
                                              modified=timezone.now() - timedelta(hours=5))
        assert recovery.reap()['stale'] == 0
        assert db(status).state == S.IN_PROGRESS

    def test_row_without_heartbeat_falls_back_to_started_then_modified(self, make_status, short_settings):
        by_started, by_modified = make_status(state='Exporting'), make_status(state=S.IN_PROGRESS)
        now = timezone.now()
        S.objects.filter(pk=by_started.pk).update(started=now - timedelta(seconds=61), modified=now)
        S.objects.filter(pk=by_modified.pk).update(modified=now - timedelta(seconds=61))
        assert recovery.reap()['stale'] == 2
        assert db(by_started).state == db(by_modified).state == S.FAILED

    def test_parent_failed_with_its_stale_child(self, make_status, short_settings):
        parent = make_status(task_class='celery.chain', is_container=True, state=S.IN_PROGRESS)
        child = make_status(parent=parent, state=S.IN_PROGRESS)
        age(child, seconds=120)
        age(parent, seconds=120)
        assert recovery.reap() == {'stale': 1, 'pending_timeout': 0, 'canceled_stopped': 0, 'containers_ended': 0}
        assert db(parent).state == S.FAILED  # through the child, never as a stale row itself

    @pytest.mark.parametrize('state', [S.PENDING, S.RETRYING])
    def test_waiting_row_past_pending_timeout_failed(self, make_status, short_settings, state, stopped,
                                                     django_capture_on_commit_callbacks):
        old, young = make_status(state=state), make_status(state=state)
        age(old, seconds=121)
        age(young, seconds=100)
        with django_capture_on_commit_callbacks(execute=True):
            assert recovery.reap()['pending_timeout'] == 1
        assert db(old).state == S.FAILED and db(young).state == state
        assert db(old).artifacts.get().text == str(recovery.PENDING_MESSAGE)
        assert len(stopped.for_task(old.task_id)) == 1

    @pytest.mark.parametrize('state', [S.SUCCEEDED, S.FAILED, S.CANCELED])
    def test_ended_rows_untouched(self, make_status, short_settings, state, stopped,
                                  django_capture_on_commit_callbacks):
        status = make_status(state=state, finished=timezone.now() - timedelta(days=3))
        age(status, days=3)
        S.objects.filter(pk=status.pk).update(finished=timezone.now() - timedelta(days=3))
        with django_capture_on_commit_callbacks(execute=True):
            assert not any(recovery.reap().values())
        assert db(status).state == state and stopped.calls == []

    def test_canceled_row_whose_worker_died_is_marked_stopped_once(self, make_status, revoke, short_settings,
                                                                   stopped, django_capture_on_commit_callbacks):
        status = make_status()
        status.start()
        status.cancel()
        S.objects.filter(pk=status.pk).update(heartbeat=timezone.now() - timedelta(seconds=61))
        with django_capture_on_commit_callbacks(execute=True):
            assert recovery.reap()['canceled_stopped'] == 1
            assert recovery.reap()['canceled_stopped'] == 0
        row = db(status)
        assert row.state == S.CANCELED and row.finished is not None
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]

    def test_twice_recovers_once(self, make_status, short_settings, stopped, django_capture_on_commit_callbacks):
        status = make_status(state=S.IN_PROGRESS)
        age(status, seconds=300)
        with django_capture_on_commit_callbacks(execute=True):
            assert recovery.reap()['stale'] == 1
            assert recovery.reap()['stale'] == 0
        assert len(stopped.calls) == 1
        assert db(status).artifacts.count() == 1

    def test_late_start_after_recovery_is_skipped(self, make_status, short_settings):
        """A message arriving after its row was failed for the pending timeout does not run."""
        status = make_status()
        age(status, seconds=121)
        recovery.reap()
        assert status.start() is False
        assert db(status).state == S.FAILED

    def test_seconds_accepted_for_thresholds(self, make_status):
        ut_settings.USER_TASKS_STALE_AFTER = 2.5
        try:
            status = make_status(state=S.IN_PROGRESS)
            S.objects.filter(pk=status.pk).update(heartbeat=timezone.now() - timedelta(seconds=3))
            assert recovery.reap()['stale'] == 1
        finally:
            del ut_settings.USER_TASKS_STALE_AFTER

    def test_container_left_unfinished_with_ended_children_is_ended(self, make_status, short_settings, stopped):
        """A group whose member was canceled before the fix: left In Progress, now ended Canceled."""
        group = make_status(task_class='celery.group', is_container=True, total_steps=2, state=S.IN_PROGRESS)
        done = timezone.now() - timedelta(hours=1)
        canceled = make_status(parent=group, state=S.CANCELED, finished=done)
        make_status(parent=group, state=S.SUCCEEDED, finished=done)
        young = make_status(task_class='celery.group', is_container=True, state=S.IN_PROGRESS)
        make_status(parent=young, state=S.SUCCEEDED, finished=done)
        running = make_status(task_class='celery.group', is_container=True, state=S.IN_PROGRESS)
        make_status(parent=running, state=S.CANCELED, finished=done)
        make_status(parent=running, state=S.IN_PROGRESS)
        empty = make_status(task_class='celery.group', is_container=True, total_steps=0, state=S.PENDING)
        for row in (group, running, empty):
            age(row, seconds=61)
        assert recovery.reap() == {'stale': 0, 'pending_timeout': 0, 'canceled_stopped': 0, 'containers_ended': 1}
        assert db(group).state == S.CANCELED and db(group).finished is not None
        assert [db(row).state for row in (young, running, empty)] == [S.IN_PROGRESS, S.IN_PROGRESS, S.PENDING]
        assert stopped.task_ids() == [group.task_id]
        assert recovery.reap()['containers_ended'] == 0
        assert db(canceled).state == S.CANCELED

    def test_a_container_whose_children_do_not_cover_its_steps_is_ended_once_stale(self, make_status, short_settings,
                                                                                   stopped):
        """Left unfinished by an earlier version, which also waited for the children's steps to cover its own."""
        done = timezone.now() - timedelta(hours=1)
        missing_member = make_status(task_class='celery.group', is_container=True, total_steps=2, state=S.IN_PROGRESS)
        make_status(parent=missing_member, state=S.SUCCEEDED, finished=done, total_steps=1)
        by_hand = make_status(task_class='celery.chain', is_container=True, total_steps=10, state=S.IN_PROGRESS)
        make_status(parent=by_hand, state=S.CANCELED, finished=done, total_steps=1)
        young = make_status(task_class='celery.group', is_container=True, total_steps=2, state=S.IN_PROGRESS)
        make_status(parent=young, state=S.SUCCEEDED, finished=done, total_steps=1)
        for row in (missing_member, by_hand):
            age(row, seconds=61)
        assert recovery.reap()['containers_ended'] == 2
        assert (db(missing_member).state, db(missing_member).completed_steps) == (S.SUCCEEDED, 2)
        assert db(by_hand).state == S.CANCELED
        assert db(young).state == S.IN_PROGRESS and db(young).finished is None
        assert sorted(stopped.task_ids()) == sorted([missing_member.task_id, by_hand.task_id])
        assert recovery.reap()['containers_ended'] == 0

    def test_container_of_a_canceled_member_whose_worker_died_ends_when_it_is_marked_stopped(
            self, make_status, revoke, short_settings, stopped):
        group = make_status(task_class='celery.group', is_container=True, total_steps=2)
        a, b = make_status(parent=group), make_status(parent=group)
        a.parent = b.parent = group
        a.start()
        a.cancel()
        b.start()
        b.succeed()
        assert db(group).state == S.IN_PROGRESS  # a's work has not stopped
        S.objects.filter(pk=a.pk).update(heartbeat=timezone.now() - timedelta(seconds=61))
        assert recovery.reap() == {'stale': 0, 'pending_timeout': 0, 'canceled_stopped': 1, 'containers_ended': 0}
        assert db(group).state == S.CANCELED
        assert stopped.task_ids() == [b.task_id, a.task_id, group.task_id]

    def test_command_and_task(self, make_status, short_settings, capsys):
        first, second = make_status(state=S.IN_PROGRESS), make_status(state=S.IN_PROGRESS)
        age(first, seconds=300)
        call_command('reap_stale_user_tasks')
        assert db(first).state == S.FAILED
        age(second, seconds=300)
        from user_tasks.tasks import reap_stale_user_tasks
        assert reap_stale_user_tasks.apply().get()['stale'] == 1
        assert db(second).state == S.FAILED


# -- worker-lost, time limit, revoked and expired signals ---------------------------------

class TestWorkerSignals:

    @pytest.mark.parametrize('exception, message', [
        (WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL).'), recovery.WORKER_LOST_MESSAGE),
        (TimeLimitExceeded(2), recovery.TIME_LIMIT_MESSAGE),
    ])
    def test_main_process_failure_found_by_task_id(self, make_status, stopped, exception, message,
                                                   django_capture_on_commit_callbacks):
        """The worker's main process has no request for the task: the id in the signal finds the row."""
        status = make_status(task_class='tests.tasks.sleepy_task')
        status.start()
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_failed(sender=marker_task, task_id=status.task_id, exception=exception)
        row = db(status)
        assert row.state == S.FAILED
        assert row.artifacts.get().text == str(message)
        assert 'SIGKILL' not in row.artifacts.get().text
        assert len(stopped.calls) == 1

    def test_failure_after_cancel_just_stops(self, make_status, revoke, stopped, django_capture_on_commit_callbacks):
        status = make_status()
        status.start()
        status.cancel()
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_failed(sender=marker_task, task_id=status.task_id, exception=WorkerLostError('lost'))
            signals.task_failed(sender=marker_task, task_id=status.task_id, exception=WorkerLostError('lost'))
        assert db(status).state == S.CANCELED and db(status).finished is not None
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]

    def test_expired(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status()
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_was_revoked(sender=marker_task, request=mock.Mock(id=status.task_id), expired=True)
        assert db(status).state == S.FAILED
        assert db(status).artifacts.get().text == 'The task expired before it ran.'
        assert len(stopped.calls) == 1

    def test_revoked_waiting(self, make_status, revoke, stopped, django_capture_on_commit_callbacks):
        status = make_status()
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_was_revoked(sender=marker_task, request=mock.Mock(id=status.task_id))
        assert db(status).state == S.CANCELED and db(status).finished is not None
        assert len(stopped.calls) == 1

    def test_terminated_running_task_ends_at_once(self, make_status, revoke, stopped,
                                                  django_capture_on_commit_callbacks):
        """Revoked with terminate=True while running and never canceled through the model."""
        status = make_status()
        status.start()
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_was_revoked(sender=marker_task, request=mock.Mock(id=status.task_id), terminated=True)
        row = db(status)
        assert row.state == S.CANCELED and row.finished is not None
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]

    def test_terminated_after_cancel_announced_once(self, make_status, revoke, stopped,
                                                    django_capture_on_commit_callbacks):
        status = make_status()
        status.start()
        with django_capture_on_commit_callbacks(execute=True):
            db(status).cancel()
        assert stopped.calls == []
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(2):
                signals.task_was_revoked(sender=marker_task, request=mock.Mock(id=status.task_id), terminated=True)
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]


# -- cancel and terminate ------------------------------------------------------------------

class TestCancelAndTerminate:

    def test_running_task_stops_at_next_progress_call(self, make_status, revoke):
        status = make_status(total_steps=5)
        status.start()
        status.increment_completed_steps()
        db(status).cancel()
        with pytest.raises(TaskCanceledException):
            status.increment_completed_steps()
        with pytest.raises(TaskCanceledException):
            status.set_state('Still going')
        assert db(status).completed_steps == 2  # as 4.0: the step is counted, then the cancel raised

    def test_terminate_scheduled_after_commit_for_opted_in_class(self, make_status, revoke,
                                                                 django_capture_on_commit_callbacks):
        status = make_status(task_class='tests.tasks.sleepy_task')
        status.start()
        ut_settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sleepy_task': 7}
        try:
            with mock.patch.object(terminate_canceled_task, 'apply_async') as apply_async:
                with django_capture_on_commit_callbacks(execute=False) as callbacks:
                    with transaction.atomic():  # the caller's transaction (TestCase's do not count)
                        assert db(status).cancel() is True
                apply_async.assert_not_called()
                for callback in callbacks:
                    callback()
            apply_async.assert_called_once_with((status.task_id,), countdown=7)
        finally:
            del ut_settings.USER_TASKS_TERMINATE_AFTER

    def test_terminate_scheduled_at_once_under_testcase_autocommit(self, make_status, revoke):
        status = make_status(task_class='tests.tasks.sleepy_task')
        status.start()
        ut_settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sleepy_task': 7}
        try:
            with mock.patch.object(terminate_canceled_task, 'apply_async') as apply_async:
                assert db(status).cancel() is True
                apply_async.assert_called_once_with((status.task_id,), countdown=7)
        finally:
            del ut_settings.USER_TASKS_TERMINATE_AFTER

    def test_terminate_not_scheduled_for_other_classes_or_waiting_tasks(self, make_status, revoke,
                                                                        django_capture_on_commit_callbacks):
        running, waiting = make_status(), make_status(task_class='tests.tasks.sleepy_task')
        running.start()
        ut_settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sleepy_task': 7}
        try:
            with mock.patch.object(terminate_canceled_task, 'apply_async') as apply_async:
                with django_capture_on_commit_callbacks(execute=True):
                    db(running).cancel()
                    db(waiting).cancel()
            apply_async.assert_not_called()
        finally:
            del ut_settings.USER_TASKS_TERMINATE_AFTER

    def test_terminate_only_a_task_still_running(self, make_status, revoke):
        running, stopped_row = make_status(), make_status()
        running.start()
        stopped_row.start()
        db(running).cancel()
        db(stopped_row).cancel()
        db(stopped_row).mark_stopped()
        assert terminate_canceled_task(running.task_id) is True
        revoke.assert_called_once_with(running.task_id, terminate=True, signal='SIGTERM')
        revoke.reset_mock()
        assert terminate_canceled_task(stopped_row.task_id) is False
        assert terminate_canceled_task('no-such-task') is False
        revoke.assert_not_called()


# -- publishing ------------------------------------------------------------------------------

class TestPublishing:

    @pytest.mark.django_db(transaction=True)
    def test_publish_that_raises_leaves_no_pending_row(self, user, celery_app):
        with mock.patch('kombu.Producer.publish', side_effect=OSError('broker down')):
            with pytest.raises(OSError):
                marker_task.apply_async(kwargs={'user_id': user.pk})
        assert not S.objects.exists()

    @pytest.mark.django_db(transaction=True)
    def test_publish_refused_at_commit_leaves_no_pending_row(self, user, celery_app):
        """Inside a transaction the message goes at commit: refused there, the committed row goes too (C1)."""
        with mock.patch('kombu.Producer.publish', side_effect=OSError('broker down')) as publish:
            with pytest.raises(OSError):
                with transaction.atomic():
                    marker_task.apply_async(kwargs={'user_id': user.pk})
                    assert S.objects.filter(state=S.PENDING).count() == 1
        publish.assert_called_once()
        assert not transaction.get_connection().in_atomic_block
        assert not S.objects.exists()

    @pytest.mark.django_db(transaction=True)
    def test_publish_refused_at_commit_leaves_a_row_that_has_started(self, user, celery_app):
        """Only a row still Pending is forgotten (a message the broker took after all may have run)."""
        def refuse_after_a_worker_started_it(*args, **kwargs):
            S.objects.filter(state=S.PENDING).update(state=S.IN_PROGRESS)
            raise OSError('broker down')
        with mock.patch('kombu.Producer.publish', side_effect=refuse_after_a_worker_started_it):
            with pytest.raises(OSError):
                with transaction.atomic():
                    marker_task.apply_async(kwargs={'user_id': user.pk})
        assert list(S.objects.values_list('state', flat=True)) == [S.IN_PROGRESS]

    @pytest.mark.django_db(transaction=True)
    def test_rolled_back_publish_leaves_no_row_and_sends_nothing(self, user, celery_app):
        with mock.patch('kombu.Producer.publish') as publish:
            with pytest.raises(RuntimeError):
                with transaction.atomic():
                    marker_task.apply_async(kwargs={'user_id': user.pk})
                    assert S.objects.count() == 1
                    raise RuntimeError('rolled back')
        assert not S.objects.exists()
        publish.assert_not_called()

    @pytest.mark.django_db(transaction=True)
    def test_committed_publish_sent_after_commit_once(self, user, celery_app):
        with mock.patch('kombu.Producer.publish') as publish:
            with transaction.atomic():
                result = marker_task.apply_async(kwargs={'user_id': user.pk})
                publish.assert_not_called()
            publish.assert_called_once()
        assert list(S.objects.values_list('task_id', 'state')) == [(result.id, S.PENDING)]


# -- purge -----------------------------------------------------------------------------------

@pytest.fixture
def media(tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def _with_file(media, status, name):
    path = media / 'user_tasks' / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('x')
    UserTaskArtifact.objects.create(status=status, file=f'user_tasks/{name}')
    return path


def _final(make_status, state=S.SUCCEEDED, days=40, **fields):
    status = make_status(state=state, **fields)
    when = timezone.now() - timedelta(days=days)
    S.objects.filter(pk=status.pk).update(finished=when, modified=when)
    return status


class TestPurge:

    def test_old_final_rows_and_files_deleted_live_rows_kept(self, make_status, media):
        old = [_final(make_status, state) for state in S.FINAL_STATES]
        files = [_with_file(media, status, f'old-{status.pk}.txt') for status in old]
        live = [make_status(state=state) for state in (S.PENDING, S.IN_PROGRESS, S.RETRYING, 'Exporting')]
        for status in live:
            age(status, days=400)
        canceled_running = make_status(state=S.CANCELED)
        age(canceled_running, days=400)  # final but its work has not stopped: finished is empty
        S.objects.filter(pk=canceled_running.pk).update(started=timezone.now() - timedelta(days=400))
        legacy = _final(make_status, S.CANCELED)  # written by upstream: no started, no finished
        S.objects.filter(pk=legacy.pk).update(finished=None)
        old.append(legacy)
        files.append(_with_file(media, legacy, 'legacy.txt'))
        live_files = [_with_file(media, status, f'live-{status.pk}.txt') for status in live + [canceled_running]]
        counts = purge()
        assert counts == {'status': 4, 'artifact': 4, 'file': 4}
        assert not any(path.exists() for path in files)
        assert all(path.exists() for path in live_files)
        assert set(S.objects.values_list('pk', flat=True)) == {s.pk for s in live + [canceled_running]}

    def test_age_counted_from_finished_not_created(self, make_status):
        status = make_status(state=S.SUCCEEDED)
        S.objects.filter(pk=status.pk).update(created=timezone.now() - timedelta(days=90),
                                              modified=timezone.now() - timedelta(days=40),
                                              finished=timezone.now() - timedelta(days=1))
        assert purge()['status'] == 0
        S.objects.filter(pk=status.pk).update(finished=None)  # an upstream row: modified counts
        assert purge()['status'] == 1

    def test_max_age_by_state(self, make_status):
        failed, succeeded = _final(make_status, S.FAILED, days=40), _final(make_status, S.SUCCEEDED, days=40)
        ut_settings.USER_TASKS_MAX_AGE_BY_STATE = {S.FAILED: timedelta(days=90)}
        try:
            assert purge()['status'] == 1
        finally:
            del ut_settings.USER_TASKS_MAX_AGE_BY_STATE
        assert list(S.objects.values_list('pk', flat=True)) == [failed.pk]
        assert not S.objects.filter(pk=succeeded.pk).exists()

    def test_container_goes_after_its_children_and_stays_with_a_live_child(self, make_status):
        done = _final(make_status, is_container=True, task_class='celery.group')
        for _ in range(3):
            _final(make_status, parent=done)
        busy = _final(make_status, is_container=True, task_class='celery.group')
        _final(make_status, parent=busy)
        running = make_status(parent=busy, state=S.IN_PROGRESS)
        purge(batch_size=2)
        assert not S.objects.filter(pk=done.pk).exists()
        assert set(S.objects.values_list('pk', flat=True)) == {busy.pk, running.pk}

    def test_statements_bounded_by_batch_size(self, make_status):
        for _ in range(7):
            _final(make_status)
        with CaptureQueriesContext(connection) as queries:
            assert purge(batch_size=3)['status'] == 7
        table = connection.ops.quote_name('user_tasks_usertaskstatus')  # "..." or `...` (MySQL)
        deletes = [q['sql'] for q in queries if q['sql'].startswith(f'DELETE FROM {table}')]
        sizes = [len(re.search(r'IN \(([^)]*)\)', sql).group(1).split(',')) for sql in deletes]
        assert sizes == [3, 3, 1]

    def test_a_file_that_cannot_be_deleted_does_not_stop_the_purge(self, make_status, media):
        status = _final(make_status)
        UserTaskArtifact.objects.create(status=status, file='user_tasks/missing/never-written.txt')
        with mock.patch('django.core.files.storage.FileSystemStorage.delete', side_effect=OSError('read-only')):
            counts = purge()
        assert counts['status'] == 1 and counts['file'] == 0

    def test_memory_does_not_grow_with_the_number_of_rows(self, user):
        def load(count):
            when = timezone.now() - timedelta(days=40)
            S.objects.bulk_create(
                S(user=user, task_id=f'm{count}-{i}', task_class='t', name='n', total_steps=1, state=S.SUCCEEDED,
                  finished=when) for i in range(count))
            tracemalloc.start()
            try:
                purge(batch_size=200)
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        small, large = load(400), load(4000)
        assert not S.objects.exists()
        assert large < small * 2 + 256 * 1024, (small, large)



def test_late_sibling_add_after_the_group_finished_does_not_over_count(make_status):
    """Child A ends, child B ends and finishes the group, then A's share of the steps arrives."""
    grp = make_status(task_class='celery.group', is_container=True, total_steps=2, state=S.IN_PROGRESS)
    a, b = make_status(parent=grp, state=S.IN_PROGRESS), make_status(parent=grp, state=S.IN_PROGRESS)
    a.parent = b.parent = grp
    S.objects.filter(pk=a.pk).update(state=S.SUCCEEDED, completed_steps=1, finished=timezone.now())
    assert b.succeed() is True
    assert (db(grp).state, db(grp).completed_steps) == (S.SUCCEEDED, 2)
    a._add_to_ancestors('completed_steps', 1, timezone.now())
    assert db(grp).completed_steps == 2


@pytest.mark.django_db(transaction=True)
def test_main_process_receivers_retry_once_on_a_lost_connection(make_status, stopped,
                                                                django_capture_on_commit_callbacks):
    """A pool child forked with the main process's connection open can break it (PyMySQL)."""
    from django.db import OperationalError
    status = make_status()
    status.start()
    real_fail, calls = S.fail, []

    def fail_once(self, message, exception=None):
        calls.append(message)
        if len(calls) == 1:
            raise OperationalError(2013, 'Lost connection to MySQL server during query')
        return real_fail(self, message, exception)

    with mock.patch.object(S, 'fail', fail_once), mock.patch.object(connection, 'close') as close:
        with django_capture_on_commit_callbacks(execute=True):
            signals.task_failed(sender=marker_task, task_id=status.task_id, exception=TimeLimitExceeded(2))
    close.assert_called_once()
    assert len(calls) == 2 and db(status).state == S.FAILED
    assert len(stopped.calls) == 1


def test_lost_connection_inside_a_transaction_is_not_retried(make_status):
    from django.db import OperationalError
    status = make_status()
    with mock.patch.object(S, 'fail', side_effect=OperationalError('gone')) as fail:
        with pytest.raises(OperationalError):
            with transaction.atomic():
                signals.task_failed(sender=marker_task, task_id=status.task_id, exception=TimeLimitExceeded(2))
    assert fail.call_count == 1

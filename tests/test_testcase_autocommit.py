"""
A host's test suite sees what production autocommit sees (``user_tasks.commit``).

Django's ``TestCase`` and pytest-django's ``django_db`` wrap each test in atomic blocks
that are never committed.  Those blocks count as autocommit: lifecycle events,
``user_task_stopped`` and publishes happen at once, as in 4.0.  An atomic block the code
under test opens is a real transaction: delivery still waits for its commit.

The in-process worker runs in another thread on its own connection, which cannot read
what an uncommitted ``TestCase`` transaction wrote; it is exercised under
``TransactionTestCase`` and ``django_db(transaction=True)``, as a host would.
"""
import logging

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import TestCase, TransactionTestCase

from tests.celery import app as tests_app
from tests.conftest import UNCONSUMED_QUEUE, PublishedRecorder, StoppedRecorder, wait_until
from tests.tasks import failing_task, sample_task, spawning_task
from user_tasks import commit, lifecycle, user_task_stopped
from user_tasks.commit import in_transaction
from user_tasks.models import UserTaskStatus as S

INVALID_USER = 98765


class _Recorders:
    """Connect stop/publish/lifecycle recorders and choose eager mode (unittest style: no fixtures)."""

    eager = False

    def setUp(self):
        super().setUp()
        self.saved_eager = (tests_app.conf.task_always_eager, tests_app.conf.task_eager_propagates)
        tests_app.conf.task_always_eager, tests_app.conf.task_eager_propagates = self.eager, False
        self.stopped, self.published, self.events = StoppedRecorder(), PublishedRecorder(), []
        user_task_stopped.connect(self.stopped, weak=False, dispatch_uid='tests.autocommit.stopped')
        from celery.signals import after_task_publish
        after_task_publish.connect(self.published, weak=False, dispatch_uid='tests.autocommit.published')
        lifecycle.event.connect(self._event, weak=False, dispatch_uid='tests.autocommit.events')
        self.user = get_user_model().objects.create_user('host-user', 'host@example.com')

    def tearDown(self):
        from celery.signals import after_task_publish
        user_task_stopped.disconnect(dispatch_uid='tests.autocommit.stopped')
        after_task_publish.disconnect(dispatch_uid='tests.autocommit.published')
        lifecycle.event.disconnect(dispatch_uid='tests.autocommit.events')
        tests_app.conf.task_always_eager, tests_app.conf.task_eager_propagates = self.saved_eager
        super().tearDown()

    def _event(self, sender, status=None, kind=None, **kwargs):
        self.events.append((status.task_id, kind))


class TestEagerUnderTestCase(_Recorders, TestCase):
    eager = True

    def test_testcase_blocks_are_not_a_transaction(self):
        self.assertFalse(in_transaction())
        with transaction.atomic():
            self.assertTrue(in_transaction())
        with transaction.atomic(durable=True):  # durable is allowed here for the same reason
            self.assertTrue(in_transaction())

    def test_stopped_signal_and_events_at_once(self):
        result = sample_task.apply_async((self.user.pk,), {'label': 'eager'})
        self.assertEqual(S.objects.get(task_id=result.id).state, S.SUCCEEDED)
        self.assertEqual([(c['task_id'], c['db_state']) for c in self.stopped.calls], [(result.id, S.SUCCEEDED)])
        self.assertEqual([kind for task_id, kind in self.events if task_id == result.id][-1], lifecycle.STOPPED)

    def test_failure_signal_at_once(self):
        result = failing_task.apply_async((self.user.pk,), {'message': 'host broke'})
        self.assertEqual([(c['task_id'], c['db_state']) for c in self.stopped.calls], [(result.id, S.FAILED)])

    def test_unknown_user_fails_the_run_with_type_error(self):
        """As in autocommit: no row (TestCase's deferred foreign key would not refuse one), a TypeError."""
        with self.assertLogs(level=logging.ERROR) as logs:
            result = sample_task.apply_async((INVALID_USER,), {'label': 'nobody'})
        self.assertTrue(result.failed())
        self.assertIsInstance(result.result, TypeError)
        self.assertEqual(str(result.result), f'Invalid user_id: {INVALID_USER}')
        self.assertIn(f'Invalid user_id: {INVALID_USER}', '\n'.join(logs.output))
        self.assertFalse(S.objects.exists())  # and nothing for TestCase's constraint check to refuse
        self.assertEqual(self.stopped.calls, [])

    def test_eager_run_in_own_atomic_block_reports_at_once(self):
        """A view under ATOMIC_REQUESTS in a TestCase: as 4.0, the eager run's stop is sent as it ends."""
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            with transaction.atomic():
                result = sample_task.apply_async((self.user.pk,), {'label': 'inner'})
                self.assertEqual([(c['task_id'], c['db_state']) for c in self.stopped.calls],
                                 [(result.id, S.SUCCEEDED)])
                kinds = [kind for task_id, kind in self.events if task_id == result.id]
                self.assertEqual((kinds[0], kinds[-1]), (lifecycle.SUBMITTED, lifecycle.STOPPED))
                failed = failing_task.apply_async((self.user.pk,), {'message': 'inner broke'})
                self.assertEqual([(c['task_id'], c['db_state']) for c in self.stopped.calls][1:],
                                 [(failed.id, S.FAILED)])
                # Once the runs have ended, work deferred by the library waits for the commit again.
                self.assertFalse(commit.in_eager_run())
                commit.after_commit(lambda: None, eager_at_once=True)
        self.assertEqual(len(callbacks), 1)

    def test_nested_eager_runs_report_at_once_until_the_outer_one_ends(self):
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            with transaction.atomic():
                result = spawning_task.apply_async((self.user.pk, self.user.pk))
                inner = S.objects.get(task_class='tests.tasks.sample_task')
                self.assertEqual([c['task_id'] for c in self.stopped.calls], [inner.task_id, result.id])
                self.assertFalse(commit.in_eager_run())
        self.assertEqual(callbacks, [])


class TestPublishUnderTestCase(_Recorders, TestCase):

    def test_publish_sent_at_once(self):
        result = sample_task.apply_async((self.user.pk,), queue=UNCONSUMED_QUEUE)
        self.assertEqual(self.published.task_ids(), [result.id])
        self.assertEqual(self.published.calls[0]['row']['state'], S.PENDING)
        self.assertIn((result.id, lifecycle.SUBMITTED), self.events)

    def test_invalid_user_id_is_logged_not_raised(self):
        """As 4.0: the publish receiver's TypeError reaches the log, not the caller."""
        with self.assertLogs(level=logging.ERROR) as logs:
            result = sample_task.apply_async((INVALID_USER,), queue=UNCONSUMED_QUEUE)
        self.assertIn(f'Invalid user_id: {INVALID_USER}', '\n'.join(logs.output))
        self.assertFalse(S.objects.filter(task_id=result.id).exists())

    def test_own_atomic_block_defers_the_publish(self):
        with self.captureOnCommitCallbacks(execute=True):
            with transaction.atomic():
                result = sample_task.apply_async((self.user.pk,), queue=UNCONSUMED_QUEUE)
                self.assertTrue(S.objects.filter(task_id=result.id).exists())
                self.assertEqual(self.published.calls, [])
                self.assertEqual(self.events, [])  # not an eager run: the events wait for the commit
        self.assertEqual(self.published.task_ids(), [result.id])
        self.assertIn((result.id, lifecycle.SUBMITTED), self.events)


# -- pytest-django's django_db (TestCase underneath) -----------------------------------------

@pytest.mark.django_db
def test_django_db_eager_stopped_at_once(eager, user, stopped):
    result = sample_task.apply_async((user.pk,), {'label': 'pytest'})
    assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [(result.id, S.SUCCEEDED)]


@pytest.mark.django_db
def test_django_db_eager_unknown_user_fails_with_type_error(eager, user):
    result = sample_task.apply_async((INVALID_USER,), {'label': 'nobody'})
    assert result.failed() and str(result.result) == f'Invalid user_id: {INVALID_USER}'
    assert isinstance(result.result, TypeError)
    assert not S.objects.exists()


@pytest.mark.django_db
def test_django_db_publish_at_once_and_deferred_in_own_block(user, published, django_capture_on_commit_callbacks):
    first = sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
    assert published.task_ids() == [first.id]
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            second = sample_task.apply_async((user.pk,), queue=UNCONSUMED_QUEUE)
            assert published.task_ids() == [first.id]
    assert published.task_ids() == [first.id, second.id]


@pytest.mark.django_db
def test_django_db_invalid_user_logged(user, caplog):
    with caplog.at_level(logging.ERROR):
        result = sample_task.apply_async((INVALID_USER,), queue=UNCONSUMED_QUEUE)
    assert f'Invalid user_id: {INVALID_USER}' in caplog.text
    assert not S.objects.filter(task_id=result.id).exists()


@pytest.mark.django_db(transaction=True)
def test_django_db_transaction_with_worker(worker, user, stopped):
    now = sample_task.apply_async((user.pk,), {'label': 'autocommit'})
    with transaction.atomic():
        later = sample_task.apply_async((user.pk,), {'label': 'committed'})
        assert in_transaction()
    for result, label in ((now, 'autocommit'), (later, 'committed')):
        assert result.get(timeout=10, interval=0.01) == label
        assert wait_until(lambda result=result: stopped.for_task(result.id)), stopped.calls
    assert S.objects.get(task_id=later.id).state == S.SUCCEEDED


# -- TransactionTestCase with the in-process worker ------------------------------------------

@pytest.mark.usefixtures('_session_worker')
class TestWorkerUnderTransactionTestCase(_Recorders, TransactionTestCase):

    def setUp(self):
        super().setUp()
        with tests_app.connection_for_write() as connection:
            connection.default_channel.queue_purge(tests_app.conf.task_default_queue)

    def _wait_stopped(self, task_id):
        self.assertTrue(wait_until(lambda: self.stopped.for_task(task_id)), self.stopped.calls)

    def test_autocommit_publish_runs(self):
        self.assertFalse(in_transaction())
        result = sample_task.apply_async((self.user.pk,), {'label': 'ttc'})
        self.assertEqual(self.published.task_ids(), [result.id])
        self.assertEqual(result.get(timeout=10, interval=0.01), 'ttc')
        self._wait_stopped(result.id)
        self.assertEqual(S.objects.get(task_id=result.id).state, S.SUCCEEDED)

    def test_own_atomic_block_publishes_after_commit(self):
        with transaction.atomic():
            result = sample_task.apply_async((self.user.pk,), {'label': 'ttc-tx'})
            self.assertEqual(self.published.calls, [])
        self.assertEqual(self.published.task_ids(), [result.id])
        self.assertEqual(result.get(timeout=10, interval=0.01), 'ttc-tx')
        self._wait_stopped(result.id)


# -- the library's own blocks (user_tasks.commit.atomic) --------------------------------------

@pytest.mark.django_db
def test_library_block_delivers_at_its_end_under_testcase(django_capture_on_commit_callbacks):
    from user_tasks import commit
    calls = []
    with django_capture_on_commit_callbacks(execute=False) as captured:
        with commit.atomic():
            commit.after_commit(lambda: calls.append('inner'))
            assert calls == []
        assert calls == ['inner']  # at the block's end: TestCase's blocks are autocommit
        with transaction.atomic():  # the caller's real transaction
            with commit.atomic():
                commit.after_commit(lambda: calls.append('caller-tx'))
            assert calls == ['inner']
    assert calls == ['inner'] and len(captured) == 1  # waits for the caller's commit
    captured[0]()
    assert calls == ['inner', 'caller-tx']


@pytest.mark.django_db
def test_library_block_that_raises_drops_its_deferred_work():
    from user_tasks import commit
    calls = []
    with pytest.raises(ZeroDivisionError):
        with commit.atomic():
            commit.after_commit(lambda: calls.append('never'))
            raise ZeroDivisionError
    assert calls == []
    commit.after_commit(lambda: calls.append('now'))
    assert calls == ['now']


class TestEagerUnderTransactionTestCase(_Recorders, TransactionTestCase):
    eager = True

    def test_stopped_at_once_in_a_real_transaction_too(self):
        """An eager run reports as 4.0's receivers did: at once, inside the caller's transaction too."""
        now = sample_task.apply_async((self.user.pk,), {'label': 'ttc-eager'})
        self.assertEqual([c['task_id'] for c in self.stopped.calls], [now.id])
        with transaction.atomic():
            later = sample_task.apply_async((self.user.pk,), {'label': 'ttc-eager-tx'})
            self.assertEqual([(c['task_id'], c['db_state']) for c in self.stopped.calls],
                             [(now.id, S.SUCCEEDED), (later.id, S.SUCCEEDED)])
        self.assertEqual(len(self.stopped.calls), 2)

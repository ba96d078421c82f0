"""The lifecycle hub: events carry what observers need, the "around" hook, and the shared model pieces."""
from unittest import mock

import pytest
from celery import current_app

from tests.tasks import marker_task
from user_tasks import control, lifecycle, signals, utils
from user_tasks.models import UserTaskStatus

S = UserTaskStatus


@pytest.fixture
def events():
    """Every lifecycle event sent during the test, as (kind, task id, details)."""
    received = []

    def record(sender, status=None, kind=None, signal=None, **details):
        received.append((kind, status.task_id, details))
    lifecycle.event.connect(record, dispatch_uid='tests.lifecycle.record', weak=False)
    yield received
    lifecycle.event.disconnect(dispatch_uid='tests.lifecycle.record')


@pytest.fixture
def wrappers(monkeypatch):
    """Register wrappers for the test only, without the metrics' own."""
    monkeypatch.setattr(lifecycle, '_wrappers', {kind: () for kind in lifecycle._wrappers})
    return lifecycle.register_around


# -- the around hook ----------------------------------------------------------------------

def test_around_without_wrappers_calls_the_work(wrappers):
    assert lifecycle.around(lifecycle.CANCEL, 'subject', lambda a, b=0: a + b, 2, b=3) == 5


def test_around_nests_wrappers_in_registration_order(wrappers):
    calls = []

    def outer(subject, proceed):
        calls.append(('outer in', subject))
        result = proceed()
        calls.append(('outer out', result))
        return result + 1

    def inner(subject, proceed):
        calls.append(('inner in', subject))
        return proceed() * 10
    wrappers(lifecycle.SUBMIT, outer)
    wrappers(lifecycle.SUBMIT, inner)
    wrappers(lifecycle.SUBMIT, inner)  # idempotent
    assert lifecycle.around(lifecycle.SUBMIT, 'row', lambda: 4) == 41
    assert calls == [('outer in', 'row'), ('inner in', 'row'), ('outer out', 40)]
    lifecycle.unregister_around(lifecycle.SUBMIT, inner)
    assert lifecycle.around(lifecycle.SUBMIT, 'row', lambda: 4) == 5


def test_around_lets_the_work_raise_through_the_wrappers(wrappers):
    seen = []

    def wrapper(subject, proceed):
        try:
            return proceed()
        except ValueError as exc:
            seen.append(exc)
            raise
    wrappers(lifecycle.EXECUTE, wrapper)
    with pytest.raises(ValueError, match='boom'):
        lifecycle.around(lifecycle.EXECUTE, None, mock.Mock(side_effect=ValueError('boom')))
    assert [str(exc) for exc in seen] == ['boom']


def test_around_refuses_an_unknown_kind():
    with pytest.raises(KeyError):
        lifecycle.register_around('publish', lambda subject, proceed: proceed())


@pytest.mark.django_db
def test_cancel_runs_inside_the_cancel_wrappers(make_status, wrappers):
    status = make_status(state=S.IN_PROGRESS)
    seen = []

    def wrapper(subject, proceed):
        seen.append((subject.pk, subject.state))
        changed = proceed()
        seen.append((changed, subject.state))
        return changed
    wrappers(lifecycle.CANCEL, wrapper)
    assert status.cancel() is True
    assert seen == [(status.pk, S.IN_PROGRESS), (True, S.CANCELED)]


# -- events carry what observers need -------------------------------------------------------

@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_a_failure_carries_its_exception_in_the_stopped_event(make_status, events):
    status = make_status()
    status.start()
    error = ValueError('bad input')
    signals.task_failed(sender=marker_task, task_id=status.task_id, exception=error)
    stopped = [details for kind, task_id, details in events if kind == lifecycle.STOPPED]
    assert stopped == [{'exception': error}]
    assert S.objects.get(pk=status.pk).state == S.FAILED


@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_a_failure_without_an_exception_says_so(make_status, events):
    status = make_status()
    status.fail('gone')
    assert [(kind, details) for kind, _, details in events] == [(lifecycle.STOPPED, {'exception': None})]


@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_a_retry_carries_its_cause(make_status, events):
    from celery.exceptions import Retry
    status = make_status()
    status.start()
    cause = KeyError('missing')
    request = mock.Mock(id=status.task_id, retries=0)
    task = mock.Mock(tracks_user_task_status=True, status=status, request=request)
    signals.retrying_task(sender=task, request=request, reason=Retry(exc=cause))
    assert [details for kind, _, details in events if kind == lifecycle.RETRIED] == [{'exception': cause}]


@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_submit_and_recover_are_announced_by_the_model(user, events):
    status = S(task_id='t-1', task_class='tests.tasks.sample_task', name='n', total_steps=1, user=user)
    status.submit(queue='exports')
    assert events == [(lifecycle.SUBMITTED, 't-1', {'queue': 'exports'})]
    assert status.recover('lost', 'stale') is True
    assert [kind for kind, _, _ in events[1:]] == [lifecycle.STOPPED, lifecycle.RECOVERED]
    assert events[-1][2] == {'reason': 'stale'}
    assert status.recover('lost', 'stale') is False  # already ended: nothing announced
    assert len(events) == 3


@pytest.mark.django_db(transaction=True)  # events go out on commit
def test_submit_many_announces_each_row(user, events):
    rows = [S(task_id=f'm-{n}', task_class='tests.tasks.sample_task', name='n', total_steps=1, user=user)
            for n in range(3)]
    S.submit_many(rows, queues={'m-0': 'first'})
    assert [(kind, task_id, details) for kind, task_id, details in events] == [
        (lifecycle.SUBMITTED, 'm-0', {'queue': 'first'}),
        (lifecycle.SUBMITTED, 'm-1', {'queue': None}),
        (lifecycle.SUBMITTED, 'm-2', {'queue': None}),
    ]
    assert S.objects.filter(task_id__startswith='m-').count() == 3


@pytest.mark.django_db
def test_purges_are_told_through_the_lifecycle():
    from user_tasks.retention import purge
    received = []

    def record(sender, counts=None, **kwargs):
        received.append((sender, counts))
    lifecycle.purged.connect(record, dispatch_uid='tests.lifecycle.purged', weak=False)
    try:
        counts = purge()
    finally:
        lifecycle.purged.disconnect(dispatch_uid='tests.lifecycle.purged')
    assert received == [(S, counts)]


# -- one of each ------------------------------------------------------------------------------

def test_is_user_task():
    from tests.tasks import noop_task, sample_task
    assert utils.is_user_task(sample_task) and utils.is_user_task(noop_task)
    assert not utils.is_user_task(current_app.tasks['celery.backend_cleanup'])
    assert not utils.is_user_task(None)
    assert not utils.is_user_task(mock.Mock())


def test_user_task_name():
    assert utils.user_task_name({'user_task_name': 'Export'}) == 'Export'
    assert utils.user_task_name({'user_task_name': ''}) is None
    assert utils.user_task_name(None) is None


def test_error_type_is_the_qualified_class_name():
    class Custom(Exception):
        pass
    # One spelling in spans and metrics: builtins bare, everything else with its module.
    assert utils.error_type(ValueError()) == 'ValueError'
    assert utils.error_type(Custom()) == (
        'tests.test_lifecycle.test_error_type_is_the_qualified_class_name.<locals>.Custom')


@pytest.mark.parametrize('state, completed, total, percent', [
    (S.SUCCEEDED, 0, 0, 100),
    (S.PENDING, 0, 0, 0),
    (S.IN_PROGRESS, 1, 3, 33),
    (S.IN_PROGRESS, 2, 3, 66),
    (S.SUCCEEDED, 3, 3, 100),
    (S.IN_PROGRESS, 5, 3, 100),
])
def test_percent(state, completed, total, percent):
    assert S(state=state, completed_steps=completed, total_steps=total).percent == percent


@pytest.mark.django_db
@pytest.mark.urls('tests.urls_with_pages')
def test_admin_and_pages_show_the_same_percent(make_status):
    from django.contrib.admin.sites import site

    from user_tasks.pages import presenters
    status = make_status(state=S.SUCCEEDED, total_steps=0)
    admin = site._registry[S]
    assert admin.progress(status) == '0/0 (100%)'
    assert presenters.summary(status, status.created)['percent'] == 100


@pytest.mark.django_db
def test_queryset_filters(make_status):
    first = make_status(task_class='a.first', state=S.SUCCEEDED)
    second = make_status(task_class='b.second', state=S.IN_PROGRESS)
    third = make_status(task_class='a.first', state='Validating')
    assert list(S.objects.newest_first()) == [third, second, first]
    assert list(S.objects.final()) == [first]
    assert set(S.objects.unfinished()) == {second, third}
    assert S.objects.recent_task_classes(2) == {'a.first', 'b.second'}
    assert S.objects.recent_task_classes(1) == {'a.first'}


def test_signals_celery_app_is_the_control_app(monkeypatch):
    assert signals.celery_app is control.celery_app is current_app
    fake = mock.Mock()
    monkeypatch.setattr(signals, 'celery_app', fake)
    assert control.celery_app is fake
    control.revoke('some-id')
    fake.control.revoke.assert_called_once_with('some-id')
    monkeypatch.undo()
    assert control.celery_app is current_app
    with mock.patch('user_tasks.signals.celery_app') as patched:
        control.terminate('other-id')
    patched.control.revoke.assert_called_once_with('other-id', terminate=True, signal='SIGTERM')
    assert signals.celery_app is current_app

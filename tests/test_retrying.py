"""
Trying a failed or canceled task again (``user_tasks.retrying``): the REST route and the page's button.

Rows are published to a queue nothing consumes and ended by hand, except in the
end-to-end tests, where the in-process worker runs the failing and the retried task.
"""
import pytest
import rules
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse

from tests.conftest import UNCONSUMED_QUEUE, wait_until
from tests.rest_fixtures import (  # noqa: F401
    API,
    api,
    owner,
    rules_added,
    stranger,
    superuser,
)
from tests.tasks import flaky_task, guarded_task, keyed_task, sample_task
from tests.unit_tasks import parked_task
from user_tasks import retrying
from user_tasks.exceptions import RetryRefused
from user_tasks.models import UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls('tests.urls_with_pages')]

FLAKY = 'tests.tasks.flaky_task'
PARKED = 'tests.unit_tasks.parked_task'


def ended(task, user, state=UserTaskStatus.FAILED, **kwargs):
    """A row of ``task`` for ``user``, published (to no worker) and ended in ``state``."""
    row = UserTaskStatus.objects.get(task_id=task.apply_async((user.pk,), kwargs, queue=UNCONSUMED_QUEUE).id)
    if state == UserTaskStatus.FAILED:
        row.fail('the service is down')
    elif state == UserTaskStatus.CANCELED:
        row.cancel()
    elif state == UserTaskStatus.SUCCEEDED:
        row.start()
        row.succeed()
    elif state == UserTaskStatus.IN_PROGRESS:
        row.start()
    return UserTaskStatus.objects.get(pk=row.pk)


def retry_url(status):
    return f'{API}tasks/{status.uuid}/retry/'


def as_api(client, user):
    client.force_authenticate(user)
    return client


# -- REST --------------------------------------------------------------------------------

@pytest.mark.parametrize('state', [UserTaskStatus.FAILED, UserTaskStatus.CANCELED])
def test_owner_retries_a_failed_or_canceled_task(api, owner, state):  # noqa: F811
    # parked_task's queue has no consumer (the session's in-process worker may be running).
    old = ended(parked_task, owner, state, label='report', extra=[1, {'a': None}])
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 201, response.content
    new = UserTaskStatus.objects.exclude(pk=old.pk).get(task_class=PARKED)
    assert response['Location'] == f'http://testserver{API}tasks/{new.uuid}/'
    assert response.json()['name'] == new.name and response.json()['state'] == UserTaskStatus.PENDING
    assert (new.user_id, new.arguments) == (owner.pk, old.arguments)
    assert new.arguments == {'args': [owner.pk], 'kwargs': {'label': 'report', 'extra': [1, {'a': None}]}}
    old_now = UserTaskStatus.objects.get(pk=old.pk)
    assert (old_now.state, old_now.retried_as) == (state, new.uuid)  # the old row stays and links
    assert retrying.retried_as(old_now) == new


def test_retries_are_counted_as_an_api_operation(api, owner):  # noqa: F811
    from prometheus_client import REGISTRY

    def count(code_class):
        return REGISTRY.get_sample_value('user_tasks_api_requests_total',
                                         {'operation': 'retry', 'code_class': code_class}) or 0
    before = count('2xx'), count('4xx')
    old = ended(flaky_task, owner)
    client = as_api(api, owner)
    client.post(retry_url(old))
    client.post(retry_url(old))  # 409: already tried again
    assert (count('2xx') - before[0], count('4xx') - before[1]) == (1, 1)


def test_superuser_retries_for_the_owner(api, owner, superuser):  # noqa: F811
    old = ended(flaky_task, owner)
    assert as_api(api, superuser).post(retry_url(old)).status_code == 201
    assert UserTaskStatus.objects.get(uuid=UserTaskStatus.objects.get(pk=old.pk).retried_as).user_id == owner.pk


def test_someone_else_gets_404_and_nothing_is_published(api, owner, stranger, published):  # noqa: F811
    old = ended(flaky_task, owner)
    before = len(published.task_ids())
    response = as_api(api, stranger).post(retry_url(old))
    assert response.status_code == 404
    assert len(published.task_ids()) == before and UserTaskStatus.objects.count() == 1


def test_view_without_retry_permission_is_403(api, owner, monkeypatch):  # noqa: F811
    old = ended(flaky_task, owner)
    monkeypatch.setitem(rules.permissions.permissions, 'user_tasks.retry_usertaskstatus', rules.always_deny)
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 403
    assert UserTaskStatus.objects.get(pk=old.pk).retried_as is None


def test_anonymous_is_refused(api, owner):  # noqa: F811
    assert api.post(retry_url(ended(flaky_task, owner))).status_code == 403


@pytest.mark.parametrize('task, state, reason', [
    (flaky_task, UserTaskStatus.PENDING, 'not_ended'),
    (flaky_task, UserTaskStatus.IN_PROGRESS, 'not_ended'),
    (flaky_task, UserTaskStatus.SUCCEEDED, 'succeeded'),
    (sample_task, UserTaskStatus.FAILED, 'not_retryable'),
])
def test_refusals_are_409_with_a_message(api, owner, published, task, state, reason):  # noqa: F811
    old = ended(task, owner, state)
    before = len(published.task_ids())
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 409
    assert response.json()['reason'] == reason and response.json()['detail']
    assert len(published.task_ids()) == before and UserTaskStatus.objects.count() == 1


def test_a_task_is_tried_again_once(api, owner):  # noqa: F811
    old = ended(flaky_task, owner)
    client = as_api(api, owner)
    assert client.post(retry_url(old)).status_code == 201
    response = client.post(retry_url(old))
    assert (response.status_code, response.json()['reason']) == (409, 'already_retried')
    assert UserTaskStatus.objects.filter(task_class=FLAKY).count() == 2


def test_rows_without_kept_arguments_are_not_retryable(api, owner):  # noqa: F811
    old = ended(flaky_task, owner)
    UserTaskStatus.objects.filter(pk=old.pk).update(arguments=None)  # e.g. written before 5.0
    response = as_api(api, owner).post(retry_url(old))
    assert (response.status_code, response.json()['reason']) == (409, 'not_retryable')
    assert 'arguments were not kept' in response.json()['detail']


def test_canvas_members_and_containers_are_not_retryable(owner):  # noqa: F811
    from celery import group
    group(flaky_task.si(owner.pk), flaky_task.si(owner.pk)).apply_async(queue=UNCONSUMED_QUEUE)
    for row in UserTaskStatus.objects.all():
        row.fail('x')
        with pytest.raises(RetryRefused) as refused:
            retrying.check(UserTaskStatus.objects.get(pk=row.pk))
        assert refused.value.reason == 'not_retryable'


def test_retry_over_the_limit_is_429_and_publishes_nothing(api, owner, published):  # noqa: F811
    old = ended(guarded_task, owner, label='old')
    for label in ('a', 'b', 'c'):
        guarded_task.apply_async((owner.pk,), {'label': label}, queue=UNCONSUMED_QUEUE)
    before = len(published.task_ids())
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 429
    assert response.json()['reason'] == 'too_many_active' and 'at most 3 tasks' in response.json()['detail']
    assert len(published.task_ids()) == before
    assert UserTaskStatus.objects.get(pk=old.pk).retried_as is None  # it may be tried again later


def test_retry_of_a_task_whose_identical_twin_is_active_returns_the_twin(api, owner, published):  # noqa: F811
    old = ended(guarded_task, owner, label='course-1')
    twin = guarded_task.apply_async((owner.pk,), {'label': 'course-1'}, queue=UNCONSUMED_QUEUE)
    before = len(published.task_ids())
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 200
    active = UserTaskStatus.objects.get(task_id=twin.id)
    assert response['Location'].endswith(f'/tasks/{active.uuid}/')
    assert len(published.task_ids()) == before
    assert UserTaskStatus.objects.get(pk=old.pk).retried_as == active.uuid


def test_a_lowered_argument_bound_refuses_the_retry(api, owner):  # noqa: F811
    old = ended(flaky_task, owner, label='x' * 100)
    with override_settings(USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES=50):
        response = as_api(api, owner).post(retry_url(old))
    assert (response.status_code, response.json()['reason']) == (409, 'not_retryable')
    assert UserTaskStatus.objects.filter(task_class=FLAKY).count() == 1


def test_keyed_task_retried_with_its_key_again(api, owner):  # noqa: F811
    old = ended(keyed_task, owner, label='k')
    assert UserTaskStatus.objects.get(pk=old.pk).concurrency_key is None
    with pytest.raises(RetryRefused):  # keyed_task is not retryable
        retrying.check(old)


def broker_down():
    """The broker refuses every message (as kombu does when it cannot connect)."""
    from unittest import mock

    from kombu.exceptions import OperationalError
    return mock.patch('kombu.Producer.publish', side_effect=OperationalError('Error 111 connecting: refused'))


def test_retry_while_the_broker_is_down_is_503_and_the_task_stays_retryable(api, owner, caplog):  # noqa: F811
    old = ended(flaky_task, owner)
    client = as_api(api, owner)
    with broker_down(), caplog.at_level('WARNING', logger='user_tasks.retrying'):
        response = client.post(retry_url(old))
    assert response.status_code == 503, response.content
    assert response.json()['reason'] == 'not_sent' and 'Try again in a moment' in response.json()['detail']
    assert 'Could not send the retry' in caplog.text
    # Nothing left Pending; the old task is not marked as tried again.
    assert list(UserTaskStatus.objects.values_list('pk', 'retried_as')) == [(old.pk, None)]
    response = client.post(retry_url(old))  # the broker is back
    assert response.status_code == 201, response.content
    new = UserTaskStatus.objects.exclude(pk=old.pk).get()
    assert UserTaskStatus.objects.get(pk=old.pk).retried_as == new.uuid


@override_settings(USER_TASKS_PUBLISH_ON_COMMIT=False)
def test_retry_sent_at_once_while_the_broker_is_down_is_503_too(api, owner):  # noqa: F811
    old = ended(flaky_task, owner)
    with broker_down():
        response = as_api(api, owner).post(retry_url(old))
    assert (response.status_code, response.json()['reason']) == (503, 'not_sent')
    assert list(UserTaskStatus.objects.values_list('pk', 'retried_as')) == [(old.pk, None)]


def test_retry_in_the_callers_transaction_refused_at_its_commit_leaves_the_task_retryable(owner):  # noqa: F811
    """Under ATOMIC_REQUESTS the message goes at the request's commit: the link goes with the new row."""
    from django.db import transaction
    from kombu.exceptions import OperationalError
    old = ended(flaky_task, owner)
    with broker_down(), pytest.raises(OperationalError):
        with transaction.atomic():
            new, _created = retrying.retry(UserTaskStatus.objects.get(pk=old.pk))
            assert UserTaskStatus.objects.get(pk=old.pk).retried_as == new.uuid
    assert list(UserTaskStatus.objects.values_list('pk', 'retried_as')) == [(old.pk, None)]
    assert retrying.can_retry(UserTaskStatus.objects.get(pk=old.pk))


# -- end to end, with the in-process worker ----------------------------------------------

def test_a_transient_failure_tried_again_succeeds(worker, api, owner, tmp_path):  # noqa: F811
    flag = tmp_path / 'service-down'
    flag.write_text('down')
    first = flaky_task.apply_async((owner.pk,), {'failure_flag': str(flag)})
    assert wait_until(lambda: UserTaskStatus.objects.filter(task_id=first.id, finished__isnull=False).exists())
    old = UserTaskStatus.objects.get(task_id=first.id)
    assert old.state == UserTaskStatus.FAILED and old.arguments is not None
    flag.unlink()  # the service is back
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 201
    new_uuid = UserTaskStatus.objects.get(pk=old.pk).retried_as
    assert wait_until(lambda: UserTaskStatus.objects.filter(uuid=new_uuid, finished__isnull=False).exists())
    new = UserTaskStatus.objects.get(uuid=new_uuid)
    assert (new.state, new.arguments) == (UserTaskStatus.SUCCEEDED, None)
    assert UserTaskStatus.objects.get(pk=old.pk).state == UserTaskStatus.FAILED


# -- the task page's "Try again" --------------------------------------------------------

def page(status):
    return reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})


def page_retry(status):
    return reverse('user_tasks:task-retry', kwargs={'uuid': status.uuid})


def as_user(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def test_the_page_offers_try_again_for_a_retryable_failure(owner):  # noqa: F811
    old = ended(flaky_task, owner)
    html = as_user(owner).get(page(old)).content.decode()
    assert 'id="ut-retry-form"' in html and 'Try again' in html and page_retry(old) in html
    assert 'csrfmiddlewaretoken' in html


@pytest.mark.parametrize('task, state', [
    (flaky_task, UserTaskStatus.PENDING), (flaky_task, UserTaskStatus.SUCCEEDED), (sample_task, UserTaskStatus.FAILED),
])
def test_no_try_again_where_it_cannot_work(owner, task, state):  # noqa: F811
    html = as_user(owner).get(page(ended(task, owner, state))).content.decode()
    assert 'ut-retry-form' not in html


def test_no_try_again_without_the_permission(owner, monkeypatch):  # noqa: F811
    old = ended(flaky_task, owner)
    monkeypatch.setitem(rules.permissions.permissions, 'user_tasks.retry_usertaskstatus', rules.always_deny)
    client = as_user(owner)
    assert 'ut-retry-form' not in client.get(page(old)).content.decode()
    assert client.post(page_retry(old)).status_code == 403


def test_try_again_goes_to_the_new_task_whose_page_the_old_one_links(owner):  # noqa: F811
    old = ended(flaky_task, owner)
    client = as_user(owner)
    response = client.post(page_retry(old))
    new = UserTaskStatus.objects.get(uuid=UserTaskStatus.objects.get(pk=old.pk).retried_as)
    assert response.status_code == 302 and response['Location'] == page(new)
    html = client.get(page(old)).content.decode()
    assert 'ut-retry-form' not in html and f'href="{page(new)}"' in html
    assert 'This task was tried again' in html
    poll = client.get(reverse('user_tasks:task-poll', kwargs={'uuid': old.uuid})).json()
    assert (poll['retryable'], poll['retried_as_url']) == (False, page(new))
    assert page(new) in poll['fragments']['retry']


def test_try_again_needs_the_csrf_token(owner):  # noqa: F811
    old = ended(flaky_task, owner)
    assert as_user(owner, enforce_csrf_checks=True).post(page_retry(old)).status_code == 403
    assert UserTaskStatus.objects.count() == 1


def test_try_again_over_the_limit_shows_the_page_with_429(owner):  # noqa: F811
    old = ended(guarded_task, owner, label='old')
    for label in ('a', 'b', 'c'):
        guarded_task.apply_async((owner.pk,), {'label': label}, queue=UNCONSUMED_QUEUE)
    response = as_user(owner).post(page_retry(old))
    assert response.status_code == 429
    html = response.content.decode()
    assert 'role="alert"' in html and 'at most 3 tasks' in html and 'ut-retry-form' in html


def test_try_again_while_the_broker_is_down_shows_the_page_with_503(owner):  # noqa: F811
    old = ended(flaky_task, owner)
    with broker_down():
        response = as_user(owner).post(page_retry(old))
    assert response.status_code == 503
    html = response.content.decode()
    assert 'role="alert"' in html and 'Try again in a moment' in html and 'ut-retry-form' in html
    assert UserTaskStatus.objects.count() == 1


def test_try_again_twice_shows_why_not(owner):  # noqa: F811
    old = ended(flaky_task, owner)
    client = as_user(owner)
    client.post(page_retry(old))
    response = client.post(page_retry(old))
    assert response.status_code == 409 and 'already been tried again' in response.content.decode()


# -- a host's test suite (Django TestCase: transactions that never commit) ------------------

@pytest.mark.django_db(transaction=False)
def test_under_testcase_the_retry_is_published_at_once(api, owner, published):  # noqa: F811
    old = ended(parked_task, owner)
    assert old.task_id in published.task_ids()  # TestCase's blocks count as autocommit (issue 11)
    response = as_api(api, owner).post(retry_url(old))
    assert response.status_code == 201
    new = UserTaskStatus.objects.get(uuid=UserTaskStatus.objects.get(pk=old.pk).retried_as)
    assert new.task_id in published.task_ids()


def test_an_error_that_is_not_the_brokers_is_raised_as_it_is(owner):  # noqa: F811
    """Only a broker that cannot take the message is a 503; a database error is not hidden behind it."""
    from unittest import mock

    from django.db import DatabaseError
    old = ended(flaky_task, owner)
    with mock.patch('kombu.Producer.publish', side_effect=DatabaseError('disk full')), pytest.raises(DatabaseError):
        retrying.retry(UserTaskStatus.objects.get(pk=old.pk))
    assert list(UserTaskStatus.objects.values_list('pk', 'retried_as')) == [(old.pk, None)]

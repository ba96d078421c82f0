"""The REST API: routes, fields, permissions, status codes, query counts and bad input."""
import base64
from unittest import mock
from uuid import uuid4

import pytest
import rules
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from rest_framework.pagination import CursorPagination, LimitOffsetPagination, PageNumberPagination

from tests.rest_helpers import API, create_artifact, create_status
from user_tasks import urls as api_urls
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.rules import STATUS_PERMISSION, add_rules

pytest_plugins = ['tests.rest_fixtures']
pytestmark = pytest.mark.django_db

#: 4.0's status fields, exactly and in 4.0's order; ``?include=state_message`` adds the message of
#: state_text (docs/rest_api.rst).
STATUS_FIELDS_4_0 = ('name', 'state', 'state_text', 'completed_steps', 'total_steps', 'attempts',
                     'created', 'modified', 'artifacts')
STATUS_FIELDS = set(STATUS_FIELDS_4_0)
ARTIFACT_FIELDS = {'name', 'created', 'modified', 'status', 'file', 'text', 'url'}


@pytest.fixture(autouse=True)
def no_revoke():
    """Cancel revokes waiting tasks in Celery; the broker is not what these tests are about."""
    with mock.patch('user_tasks.signals.celery_app.control.revoke') as revoke:
        yield revoke


def status_url(status, suffix=''):
    return f'{API}tasks/{status.uuid}/{suffix}'


def artifact_url(artifact):
    return f'{API}artifacts/{artifact.uuid}/'


# -- routes and fields -------------------------------------------------------------------

def test_url_names_and_routes():
    uid = uuid4()
    assert reverse('usertaskstatus-list') == f'{API}tasks/'
    assert reverse('usertaskstatus-detail', args=[uid]) == f'{API}tasks/{uid}/'
    assert reverse('usertaskstatus-cancel', args=[uid]) == f'{API}tasks/{uid}/cancel/'
    assert reverse('usertaskartifact-list') == f'{API}artifacts/'
    assert reverse('usertaskartifact-detail', kwargs={'uuid': uid}) == f'{API}artifacts/{uid}/'
    assert isinstance(api_urls.urlpatterns, list)
    assert api_urls.ROUTER.urls


def test_status_list_fields_and_newest_first(api, owner):
    older = create_status(owner, 1)
    newer = create_status(owner, 2)
    UserTaskStatus.objects.filter(pk=older.pk).update(created=newer.created.replace(year=2000))
    artifact = create_artifact(newer)
    api.force_authenticate(owner)
    response = api.get(f'{API}tasks/')
    assert response.status_code == 200
    data = response.json()
    assert isinstance(data, list)  # no pagination unless the project asks for it
    assert [row['name'] for row in data] == [newer.name, older.name]
    assert set(data[0]) == STATUS_FIELDS
    assert tuple(data[0]) == STATUS_FIELDS_4_0  # 4.0's, in 4.0's order
    assert data[0]['artifacts'] == [f'http://testserver{artifact_url(artifact)}']
    assert data[0]['state'] == 'Pending' and data[0]['state_text'] == 'Pending'
    assert data[1]['artifacts'] == []


def test_same_created_is_ordered_by_id(api, owner):
    first, second = create_status(owner, 1), create_status(owner, 2)
    UserTaskStatus.objects.update(created=first.created)
    api.force_authenticate(owner)
    assert [row['name'] for row in api.get(f'{API}tasks/').json()] == [second.name, first.name]


def test_artifact_fields(api, owner, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = '/media/'
    status = create_status(owner)
    text = create_artifact(status, name='Error', text='boom')
    url = create_artifact(status, name='BASE_URL', text='', url='https://example.com/x')
    with_file = create_artifact(status, text='')
    with_file.file.save('out.txt', ContentFile(b'data'))
    api.force_authenticate(owner)
    rows = {row['name']: row for row in api.get(f'{API}artifacts/').json()}
    assert set(rows['Error']) == ARTIFACT_FIELDS
    assert rows['Error']['text'] == 'boom' and rows['Error']['file'] == '' and rows['Error']['url'] == ''
    assert rows['Error']['status'] == f'http://testserver{status_url(status)}'
    assert rows['BASE_URL']['url'] == 'https://example.com/x'
    assert rows['Output']['file'] == with_file.file.url
    assert rows['Output']['file'].startswith('/media/user_tasks/')
    detail = api.get(artifact_url(text)).json()
    assert detail == rows['Error']
    assert api.get(artifact_url(url)).status_code == 200


def test_artifact_file_download_setting_without_download_view_keeps_storage_url(api, owner, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    artifact = create_artifact(create_status(owner), text='')
    artifact.file.save('out.txt', ContentFile(b'data'))
    api.force_authenticate(owner)
    with override_settings(USER_TASKS_ARTIFACT_DOWNLOADS=True):
        assert api.get(artifact_url(artifact)).json()['file'] == artifact.file.url


def test_artifact_file_points_at_the_download_view_when_asked(api, owner, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    artifact = create_artifact(create_status(owner), text='')
    artifact.file.save('out.txt', ContentFile(b'data'))
    without_file = create_artifact(artifact.status, text='x')
    api.force_authenticate(owner)
    with override_settings(USER_TASKS_ARTIFACT_DOWNLOADS=True, ROOT_URLCONF='tests.urls_with_downloads'):
        assert api.get(artifact_url(artifact)).json()['file'] == (
            f'http://testserver/downloads/artifacts/{artifact.uuid}/download/')
        assert api.get(artifact_url(without_file)).json()['file'] == ''
    with override_settings(ROOT_URLCONF='tests.urls_with_downloads'):
        assert api.get(artifact_url(artifact)).json()['file'] == artifact.file.url


def test_detail(api, owner):
    status = create_status(owner, completed_steps=1)
    api.force_authenticate(owner)
    data = api.get(status_url(status)).json()
    assert set(data) == STATUS_FIELDS
    assert data['completed_steps'] == 1 and data['total_steps'] == 4 and data['attempts'] == 1


@pytest.mark.parametrize('query', ['?include=state_message', '?include=other,state_message',
                                   '?include=other&include=state_message'])
def test_include_state_message_adds_the_message_after_4_0s_fields(api, owner, query):
    status = create_status(owner, state='Exporting course')
    api.force_authenticate(owner)
    for data in (api.get(status_url(status) + query).json(), api.get(f'{API}tasks/{query}').json()[0]):
        assert tuple(data) == (*STATUS_FIELDS_4_0, 'state_msgid', 'state_params')
        assert (data['state_msgid'], data['state_params']) == ('Exporting course', {})


def test_other_includes_keep_4_0s_fields(api, owner):
    status = create_status(owner)
    api.force_authenticate(owner)
    assert tuple(api.get(status_url(status) + '?include=state_msgid').json()) == STATUS_FIELDS_4_0


def test_custom_state_text_is_the_raw_state(api, owner):
    status = create_status(owner, state='Exporting course')
    api.force_authenticate(owner)
    assert api.get(status_url(status)).json()['state_text'] == 'Exporting course'


# -- who sees what ---------------------------------------------------------------------------

def test_lists_hold_only_own_rows(api, owner, stranger):
    mine = create_status(owner)
    create_artifact(mine)
    create_artifact(create_status(stranger))
    api.force_authenticate(owner)
    assert [row['name'] for row in api.get(f'{API}tasks/').json()] == [mine.name]
    artifacts = api.get(f'{API}artifacts/').json()
    assert [row['status'] for row in artifacts] == [f'http://testserver{status_url(mine)}']


def test_superuser_sees_all(api, owner, stranger, superuser):
    create_artifact(create_status(owner))
    theirs = create_status(stranger)
    create_artifact(theirs)
    api.force_authenticate(superuser)
    assert len(api.get(f'{API}tasks/').json()) == 2
    assert len(api.get(f'{API}artifacts/').json()) == 2
    assert api.get(status_url(theirs)).status_code == 200
    assert api.post(status_url(theirs, 'cancel/')).status_code == 200
    assert api.delete(status_url(theirs)).status_code == 204


@pytest.mark.parametrize('method, suffix', [
    ('get', 'tasks/'), ('get', 'artifacts/'), ('get', 'tasks/{status}/'), ('delete', 'tasks/{status}/'),
    ('post', 'tasks/{status}/cancel/'), ('get', 'artifacts/{artifact}/'),
])
def test_anonymous_is_403_under_default_authentication(api, owner, method, suffix):
    status = create_status(owner)
    artifact = create_artifact(status)
    response = getattr(api, method)(API + suffix.format(status=status.uuid, artifact=artifact.uuid))
    assert response.status_code == 403
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.PENDING


@override_settings(REST_FRAMEWORK={'DEFAULT_AUTHENTICATION_CLASSES': [
    'rest_framework.authentication.BasicAuthentication']})
def test_anonymous_is_401_when_the_first_authentication_class_challenges(api):
    response = api.get(f'{API}tasks/')
    assert response.status_code == 401
    assert response['WWW-Authenticate'].startswith('Basic')


@pytest.mark.parametrize('method, suffix', [
    ('get', ''), ('delete', ''), ('post', 'cancel/'),
])
def test_someone_elses_status_is_404(api, owner, stranger, method, suffix):
    status = create_status(owner)
    api.force_authenticate(stranger)
    assert getattr(api, method)(status_url(status, suffix)).status_code == 404
    status.refresh_from_db()
    assert status.state == UserTaskStatus.PENDING


def test_someone_elses_artifact_is_404(api, owner, stranger):
    artifact = create_artifact(create_status(owner))
    api.force_authenticate(stranger)
    assert api.get(artifact_url(artifact)).status_code == 404


@pytest.fixture
def staff_may_view_all():
    """A host rule letting staff view (but not cancel or delete) every task, with no list filter."""
    rules.set_perm('user_tasks.view_usertaskstatus', rules.is_staff | STATUS_PERMISSION)
    with override_settings(USER_TASKS_STATUS_FILTERS=()):
        yield
    add_rules()


@pytest.mark.parametrize('method, suffix', [('delete', ''), ('post', 'cancel/')])
def test_view_but_not_allowed_is_403(api, owner, stranger, staff_may_view_all, method, suffix):
    status = create_status(owner)
    stranger.is_staff = True
    stranger.save()
    api.force_authenticate(stranger)
    assert api.get(status_url(status)).status_code == 200
    assert getattr(api, method)(status_url(status, suffix)).status_code == 403
    status.refresh_from_db()
    assert status.state == UserTaskStatus.PENDING


def test_permissions_are_asked_of_has_perm_with_the_object(api, owner):
    status = create_status(owner)
    api.force_authenticate(owner)
    with mock.patch.object(type(owner), 'has_perm', autospec=True, return_value=False) as has_perm:
        assert api.get(status_url(status)).status_code == 404
    assert any(call.args[1] == 'user_tasks.view_usertaskstatus' and call.args[2] == status
               for call in has_perm.call_args_list)
    with mock.patch.object(type(owner), 'has_perm', autospec=True,
                           side_effect=lambda user, perm, obj=None: perm != 'user_tasks.cancel_usertaskstatus'):
        assert api.post(status_url(status, 'cancel/')).status_code == 403


def test_without_rules_only_superusers_have_object_permissions(api, owner):
    status = create_status(owner)
    api.force_authenticate(owner)
    for name in ('user_tasks.view_usertaskstatus',):
        rules.remove_perm(name)
    try:
        assert api.get(status_url(status)).status_code == 404
    finally:
        add_rules()


def test_artifact_filters_setting_is_its_own(api, owner, stranger):
    """B1: USER_TASKS_ARTIFACT_FILTERS, not the status filters, narrows the artifact list."""
    create_artifact(create_status(owner))
    api.force_authenticate(stranger)
    with override_settings(USER_TASKS_ARTIFACT_FILTERS=()):
        assert len(api.get(f'{API}artifacts/').json()) == 1
    with override_settings(USER_TASKS_STATUS_FILTERS=()):
        assert api.get(f'{API}artifacts/').json() == []
        assert len(api.get(f'{API}tasks/').json()) == 1


# -- cancel and delete -----------------------------------------------------------------------

@pytest.mark.parametrize('state', [UserTaskStatus.PENDING, UserTaskStatus.RETRYING, UserTaskStatus.IN_PROGRESS])
def test_cancel_returns_200_and_the_canceled_status(api, owner, state):
    status = create_status(owner, state=state)
    api.force_authenticate(owner)
    response = api.post(status_url(status, 'cancel/'))
    assert response.status_code == 200
    assert response.json()['state'] == UserTaskStatus.CANCELED
    assert set(response.json()) == STATUS_FIELDS
    status.refresh_from_db()
    assert status.state == UserTaskStatus.CANCELED
    assert response.json()['modified'].replace('Z', '+00:00') == status.modified.isoformat()


@pytest.mark.parametrize('state', UserTaskStatus.FINAL_STATES)
def test_cancel_of_a_finished_task_returns_it_unchanged(api, owner, state, no_revoke):
    status = create_status(owner, state=state)
    before = api.get  # keep a reference; the row must not change at all
    row = UserTaskStatus.objects.filter(pk=status.pk).values().get()
    api.force_authenticate(owner)
    response = before(status_url(status))
    response = api.post(status_url(status, 'cancel/'))
    assert response.status_code == 200
    assert response.json()['state'] == state
    assert UserTaskStatus.objects.filter(pk=status.pk).values().get() == row
    no_revoke.assert_not_called()


def test_cancel_of_a_container_cancels_its_children(api, owner):
    container = create_status(owner, 1, is_container=True, task_class='celery.group')
    children = [create_status(owner, n, parent=container) for n in (2, 3)]
    done = create_status(owner, 4, parent=container, state=UserTaskStatus.SUCCEEDED)
    api.force_authenticate(owner)
    assert api.post(status_url(container, 'cancel/')).json()['state'] == UserTaskStatus.CANCELED
    states = {c.state for c in UserTaskStatus.objects.filter(pk__in=[c.pk for c in children])}
    assert states == {UserTaskStatus.CANCELED}
    done.refresh_from_db()
    assert done.state == UserTaskStatus.SUCCEEDED


def test_cancel_ignores_a_body_that_is_not_json(api, owner):
    status = create_status(owner)
    api.force_authenticate(owner)
    response = api.post(status_url(status, 'cancel/'), data=b'{not json', content_type='application/json')
    assert response.status_code == 200
    response = api.post(status_url(status, 'cancel/'), data=b'\xff\xfe', content_type='application/octet-stream')
    assert response.status_code in (200, 415)


def _broker_unreachable():
    from kombu.exceptions import OperationalError
    return OperationalError('Error 111 connecting to 127.0.0.1:6379. Connection refused.')


@pytest.mark.parametrize('state', [UserTaskStatus.PENDING, UserTaskStatus.RETRYING])
def test_cancel_while_the_broker_is_unreachable_still_cancels(api, owner, state, no_revoke, caplog):
    """The revoke is a hint: the Canceled row is what keeps the body from running (task_prerun)."""
    no_revoke.side_effect = _broker_unreachable()
    status = create_status(owner, state=state)
    api.force_authenticate(owner)
    with caplog.at_level('WARNING', logger='user_tasks.control'):  # the session worker set the root to ERROR
        response = api.post(status_url(status, 'cancel/'))
    assert response.status_code == 200, response.content
    assert response.json()['state'] == UserTaskStatus.CANCELED
    no_revoke.assert_called_once_with(status.task_id)
    row = UserTaskStatus.objects.get(pk=status.pk)
    assert row.state == UserTaskStatus.CANCELED and row.finished is not None
    assert f'Could not revoke user task {status.task_id}' in caplog.text


def test_delete_while_the_broker_is_unreachable_still_deletes(api, owner, no_revoke):
    no_revoke.side_effect = _broker_unreachable()
    status = create_status(owner)
    api.force_authenticate(owner)
    assert api.delete(status_url(status)).status_code == 204
    assert not UserTaskStatus.objects.exists()


def test_cancel_of_a_running_task_whose_termination_cannot_be_scheduled(api, owner, settings, caplog):
    """USER_TASKS_TERMINATE_AFTER with the broker down: canceled all the same; it stops at its next step."""
    settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sample_task': 5}
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    api.force_authenticate(owner)
    with mock.patch('celery.app.task.Task.apply_async', side_effect=_broker_unreachable()) as send, \
            caplog.at_level('WARNING', logger='user_tasks.control'):
        response = api.post(status_url(status, 'cancel/'))
    assert response.status_code == 200, response.content
    assert response.json()['state'] == UserTaskStatus.CANCELED
    send.assert_called_once()
    assert f'Could not schedule the termination of canceled user task {status.task_id}' in caplog.text


def test_delete_removes_the_task_and_its_artifacts(api, owner):
    status = create_status(owner, state=UserTaskStatus.SUCCEEDED)
    create_artifact(status)
    api.force_authenticate(owner)
    assert api.delete(status_url(status)).status_code == 204
    assert not UserTaskStatus.objects.exists() and not UserTaskArtifact.objects.exists()


@pytest.mark.parametrize('state', [UserTaskStatus.PENDING, UserTaskStatus.IN_PROGRESS, UserTaskStatus.RETRYING])
def test_delete_of_a_running_task_cancels_it_first(api, owner, state):
    status = create_status(owner, state=state)
    api.force_authenticate(owner)
    seen = []
    real_cancel = UserTaskStatus.cancel

    def cancel(self):
        seen.append((self.pk, UserTaskStatus.objects.filter(pk=self.pk).exists()))
        result = real_cancel(self)
        seen.append(UserTaskStatus.objects.get(pk=self.pk).state)
        return result

    with mock.patch.object(UserTaskStatus, 'cancel', cancel):
        assert api.delete(status_url(status)).status_code == 204
    assert seen == [(status.pk, True), UserTaskStatus.CANCELED]
    assert not UserTaskStatus.objects.filter(pk=status.pk).exists()


def test_delete_of_a_container_deletes_and_stops_its_children(api, owner):
    container = create_status(owner, 1, is_container=True, task_class='celery.chain', state=UserTaskStatus.FAILED)
    running = create_status(owner, 2, parent=container, state=UserTaskStatus.IN_PROGRESS)
    create_artifact(running)
    nested = create_status(owner, 3, parent=container, is_container=True, task_class='celery.group')
    create_status(owner, 4, parent=nested)
    api.force_authenticate(owner)
    canceled = []
    real_cancel = UserTaskStatus.cancel
    with mock.patch.object(UserTaskStatus, 'cancel', lambda self: canceled.append(self.pk) or real_cancel(self)):
        assert api.delete(status_url(container)).status_code == 204
    assert running.pk in canceled
    assert not UserTaskStatus.objects.exists() and not UserTaskArtifact.objects.exists()


# -- query counts ------------------------------------------------------------------------------

class FiftyPerPage(PageNumberPagination):
    page_size = 50


def _count_queries(api, url):
    with CaptureQueriesContext(connection) as queries:
        response = api.get(url)
    assert response.status_code == 200
    return len(queries), response


def _make_rows(user, count, start=0):
    task_ids = [f'bulk-{user.pk}-{n}' for n in range(start, start + count)]
    UserTaskStatus.objects.bulk_create([
        UserTaskStatus(user=user, task_id=task_id, task_class='tests.tasks.sample_task',
                       name=f'bulk {task_id}', total_steps=2)
        for task_id in task_ids
    ])
    statuses = UserTaskStatus.objects.filter(task_id__in=task_ids)
    UserTaskArtifact.objects.bulk_create(
        [UserTaskArtifact(status=s, name=name, text='t') for s in statuses for name in ('Output', 'Error')])


@pytest.mark.parametrize('who', ['owner', 'superuser'])
def test_list_query_counts_do_not_grow_with_rows(api, owner, superuser, who):
    user = {'owner': owner, 'superuser': superuser}[who]
    api.force_authenticate(user)
    _make_rows(owner, 1)
    one_status, response = _count_queries(api, f'{API}tasks/')
    assert len(response.json()) == 1
    one_artifact, response = _count_queries(api, f'{API}artifacts/')
    assert len(response.json()) == 2
    _make_rows(owner, 499, start=1)
    many_status, response = _count_queries(api, f'{API}tasks/')
    assert len(response.json()) == 500 and all(len(row['artifacts']) == 2 for row in response.json())
    many_artifact, response = _count_queries(api, f'{API}artifacts/')
    assert len(response.json()) == 1000
    # One SELECT of the statuses plus one prefetch of their artifacts; one SELECT ... JOIN for artifacts.
    assert (one_status, many_status) == (2, 2)
    assert (one_artifact, many_artifact) == (1, 1)


def test_list_query_counts_with_session_authentication(client, owner):
    client.force_login(owner)
    _make_rows(owner, 500)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f'{API}tasks/').status_code == 200
    # session + user + statuses + artifacts
    assert len(queries) == 4
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f'{API}artifacts/').status_code == 200
    assert len(queries) == 3


def test_paginated_list_query_counts(api, owner):
    api.force_authenticate(owner)
    with override_settings(REST_FRAMEWORK={'DEFAULT_PAGINATION_CLASS': 'tests.test_api.FiftyPerPage'}):
        _make_rows(owner, 1)
        small = _count_queries(api, f'{API}tasks/')[0]
        _make_rows(owner, 499, start=1)
        big, response = _count_queries(api, f'{API}tasks/')
        assert (small, big) == (3, 3)  # COUNT, page, artifacts
        assert response.json()['count'] == 500 and len(response.json()['results']) == 50
        assert _count_queries(api, f'{API}artifacts/?page=20')[0] == 2


def test_detail_and_cancel_query_counts_are_bounded(api, owner):
    status = create_status(owner)
    for _ in range(50):
        create_artifact(status)
    api.force_authenticate(owner)
    assert _count_queries(api, status_url(status))[0] == 2
    assert _count_queries(api, artifact_url(status.artifacts.first()))[0] == 1
    with CaptureQueriesContext(connection) as queries:
        assert api.post(status_url(status, 'cancel/')).status_code == 200
    assert len(queries) <= 6


# -- pagination follows the project's settings ---------------------------------------------

class TwoPerPage(PageNumberPagination):
    """DRF reads PAGE_SIZE once, at import; a fixed size keeps these tests independent of order."""

    page_size = 2


class TwoAtATime(LimitOffsetPagination):
    default_limit = 2


PAGE_NUMBER = {'DEFAULT_PAGINATION_CLASS': 'tests.test_api.TwoPerPage'}
LIMIT_OFFSET = {'DEFAULT_PAGINATION_CLASS': 'tests.test_api.TwoAtATime'}


@override_settings(REST_FRAMEWORK=PAGE_NUMBER)
def test_page_number_pagination(api, owner):
    for n in range(3):
        create_status(owner, n)
    api.force_authenticate(owner)
    data = api.get(f'{API}tasks/').json()
    assert data['count'] == 3 and len(data['results']) == 2 and data['next'].endswith('?page=2')
    assert len(api.get(f'{API}tasks/?page=2').json()['results']) == 1
    for page in ('3', '0', '-1', 'last-but-one', '9' * 30, '1e9', '\u0663'):
        assert api.get(f'{API}tasks/', {'page': page}).status_code == 404, page
    assert api.get(f'{API}tasks/?page=last').status_code == 200


@override_settings(REST_FRAMEWORK=LIMIT_OFFSET)
def test_limit_offset_pagination_with_absurd_numbers(api, owner):
    create_status(owner)
    create_artifact(create_status(owner, 2))
    api.force_authenticate(owner)
    assert api.get(f'{API}tasks/').json()['count'] == 2
    for query in ({'offset': '9' * 30}, {'offset': str(2 ** 63)}, {'limit': '9' * 30}, {'offset': '-5'},
                  {'limit': 'x', 'offset': 'y'}, {'offset': str(2 ** 63 - 1)}):
        for route in ('tasks/', 'artifacts/'):
            response = api.get(f'{API}{route}', query)
            assert response.status_code in (200, 404), (query, response.status_code)


class TwoByCursor(CursorPagination):
    page_size = 2


@override_settings(REST_FRAMEWORK={'DEFAULT_PAGINATION_CLASS': 'tests.test_api.TwoByCursor'})
@pytest.mark.parametrize('route', ['tasks/', 'artifacts/'])
def test_cursor_pagination_and_a_forged_cursor(api, owner, route):
    for n in range(3):
        create_artifact(create_status(owner, n))
    api.force_authenticate(owner)
    first = api.get(f'{API}{route}').json()
    assert len(first['results']) == 2 and first['next']
    assert len(api.get(first['next']).json()['results']) == 1
    # A cursor is the client's to send back: one whose position is not a date is a 404, not a 500.
    for position in ('x', '2024', '9' * 30):
        cursor = base64.b64encode(f'p={position}'.encode()).decode()
        response = api.get(f'{API}{route}', {'cursor': cursor})
        assert response.status_code == 404, (position, response.status_code)
        assert response.json() == {'detail': 'Invalid cursor'}


# -- bad input -------------------------------------------------------------------------------

MALFORMED = ['not-a-uuid', '1234', '00000000-0000-0000-0000-00000000000g', 'x' * 300, '%00', '..', '%E2%98%83']


@pytest.mark.parametrize('bad', MALFORMED)
def test_malformed_uuids_are_404(api, owner, bad):
    api.force_authenticate(owner)
    for method, url in [('get', f'{API}tasks/{bad}/'), ('delete', f'{API}tasks/{bad}/'),
                        ('post', f'{API}tasks/{bad}/cancel/'), ('get', f'{API}artifacts/{bad}/')]:
        assert getattr(api, method)(url).status_code == 404, (method, url)


def test_unknown_uuids_are_404(api, owner):
    api.force_authenticate(owner)
    uid = uuid4()
    assert api.get(f'{API}tasks/{uid}/').status_code == 404
    assert api.delete(f'{API}tasks/{uid}/').status_code == 404
    assert api.post(f'{API}tasks/{uid}/cancel/').status_code == 404
    assert api.get(f'{API}artifacts/{uid}/').status_code == 404
    assert api.get(f'{API}tasks/{str(uid).upper()}/').status_code == 404


@pytest.mark.parametrize('method, suffix', [
    ('post', 'tasks/'), ('put', 'tasks/'), ('delete', 'tasks/'), ('patch', 'tasks/'),
    ('put', 'tasks/{status}/'), ('patch', 'tasks/{status}/'), ('post', 'tasks/{status}/'),
    ('get', 'tasks/{status}/cancel/'), ('delete', 'tasks/{status}/cancel/'), ('put', 'tasks/{status}/cancel/'),
    ('post', 'artifacts/'), ('delete', 'artifacts/{artifact}/'), ('put', 'artifacts/{artifact}/'),
    ('patch', 'artifacts/{artifact}/'), ('post', 'artifacts/{artifact}/'),
])
def test_wrong_methods_are_405(api, owner, method, suffix):
    status = create_status(owner)
    artifact = create_artifact(status)
    api.force_authenticate(owner)
    url = API + suffix.format(status=status.uuid, artifact=artifact.uuid)
    if method == 'get':
        assert api.get(url).status_code == 405
    else:
        assert getattr(api, method)(url, data=b'{}', content_type='application/json').status_code == 405
    assert UserTaskStatus.objects.filter(pk=status.pk, state=UserTaskStatus.PENDING).exists()
    assert UserTaskArtifact.objects.filter(pk=artifact.pk).exists()


@pytest.mark.parametrize('query', [
    '?garbage', '?page=x&page_size=-1&ordering=-nope', '?format=garbage', '?format=json', '?format=api',
    '?%ff%fe=%00', '?' + 'a=b&' * 500, '?user=1&state=Failed', '?uuid[]=1&&&==&', '?limit=%00&offset=%ff',
])
def test_garbage_query_strings_are_never_500(api, owner, query):
    create_artifact(create_status(owner))
    api.force_authenticate(owner)
    for route in ('tasks/', 'artifacts/'):
        response = api.get(f'{API}{route}{query}')
        if '%00' in query:
            # A NUL byte is refused before any filter backend sees it (PostgreSQL would 500).
            assert response.status_code == 400, (route, query, response.status_code)
            assert 'NUL' in response.json()['detail']
        else:
            assert response.status_code in (200, 404), (route, query, response.status_code)


def test_options_and_head(api, owner):
    status = create_status(owner)
    api.force_authenticate(owner)
    assert api.options(f'{API}tasks/').status_code == 200
    assert api.options(status_url(status)).status_code == 200
    assert api.head(status_url(status)).status_code == 200

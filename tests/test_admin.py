"""The admin: both models, newest first, filters, search, actions, and no full COUNT on big tables."""
from unittest import mock

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.rest_helpers import create_artifact, create_status
from user_tasks.admin import CappedCountPaginator, UserTaskArtifactAdmin, UserTaskStatusAdmin
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytest_plugins = ['tests.rest_fixtures']
pytestmark = pytest.mark.django_db

STATUS_LIST = reverse('admin:user_tasks_usertaskstatus_changelist')
ARTIFACT_LIST = reverse('admin:user_tasks_usertaskartifact_changelist')


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture(autouse=True)
def no_revoke():
    with mock.patch('user_tasks.signals.celery_app.control.revoke') as revoke:
        yield revoke


def _names(response):
    return [obj.name for obj in response.context['cl'].result_list]


def test_both_models_registered():
    assert isinstance(admin.site._registry[UserTaskStatus], UserTaskStatusAdmin)
    assert isinstance(admin.site._registry[UserTaskArtifact], UserTaskArtifactAdmin)


def test_status_changelist_newest_first_with_progress(staff_client, owner):
    older = create_status(owner, 1, completed_steps=1)
    newer = create_status(owner, 2, completed_steps=3)
    UserTaskStatus.objects.filter(pk=older.pk).update(created=newer.created.replace(year=2001))
    response = staff_client.get(STATUS_LIST)
    assert response.status_code == 200
    assert _names(response) == [newer.name, older.name]
    content = response.content.decode()
    assert '3/4 (75%)' in content and '1/4 (25%)' in content


def test_progress_of_zero_total_steps():
    status = UserTaskStatus(completed_steps=0, total_steps=0)
    assert UserTaskStatusAdmin(UserTaskStatus, admin.site).progress(status) == '0/0 (0%)'


def test_artifact_changelist_newest_first(staff_client, owner):
    status = create_status(owner)
    first = create_artifact(status, name='first')
    second = create_artifact(status, name='second')
    UserTaskArtifact.objects.filter(pk=first.pk).update(created=second.created.replace(year=2001))
    response = staff_client.get(ARTIFACT_LIST)
    assert response.status_code == 200
    assert _names(response) == ['second', 'first']


def test_filters_by_state_and_task_class(staff_client, owner):
    create_status(owner, 1, state=UserTaskStatus.FAILED, task_class='tests.tasks.a')
    create_status(owner, 2, state=UserTaskStatus.SUCCEEDED, task_class='tests.tasks.b')
    create_status(owner, 3, state=UserTaskStatus.FAILED, task_class='tests.tasks.b')
    assert len(_names(staff_client.get(STATUS_LIST, {'state': 'Failed'}))) == 2
    assert len(_names(staff_client.get(STATUS_LIST, {'task_class': 'tests.tasks.b'}))) == 2
    assert _names(staff_client.get(STATUS_LIST, {'task_class': 'tests.tasks.b', 'state': 'Failed'})) == [
        'Task 3 of owner']
    content = staff_client.get(STATUS_LIST).content.decode()
    assert 'tests.tasks.a' in content and 'In Progress' in content


@pytest.mark.parametrize('term, expected', [
    ('owner-task-2', ['Task 2 of owner']),
    ('tests.tasks.special', ['Task 2 of owner']),
    ('Task 1 of', ['Task 1 of owner']),
    ('stranger', ['Task 3 of stranger']),
    ('stranger@example.com', ['Task 3 of stranger']),
    ('not-a-uuid', []),
    ('', ['Task 3 of stranger', 'Task 2 of owner', 'Task 1 of owner']),
])
def test_search(staff_client, owner, stranger, term, expected):
    create_status(owner, 1)
    create_status(owner, 2, task_class='tests.tasks.special')
    create_status(stranger, 3)
    response = staff_client.get(STATUS_LIST, {'q': term})
    assert response.status_code == 200
    assert sorted(_names(response)) == sorted(expected)


def test_search_by_uuid(staff_client, owner):
    target = create_status(owner, 1)
    create_status(owner, 2)
    assert _names(staff_client.get(STATUS_LIST, {'q': str(target.uuid)})) == [target.name]
    artifact = create_artifact(target, name='found')
    create_artifact(create_status(owner, 3), name='other')
    assert _names(staff_client.get(ARTIFACT_LIST, {'q': str(artifact.uuid)})) == ['found']
    assert _names(staff_client.get(ARTIFACT_LIST, {'q': str(target.uuid)})) == ['found']
    assert staff_client.get(ARTIFACT_LIST, {'q': 'garbage'}).status_code == 200


def test_parent_is_read_only(staff_client, owner):
    parent = create_status(owner, 1, is_container=True, task_class='celery.chain')
    child = create_status(owner, 2, parent=parent)
    response = staff_client.get(reverse('admin:user_tasks_usertaskstatus_change', args=[child.pk]))
    assert response.status_code == 200
    form = response.context['adminform'].form
    assert 'parent' not in form.fields and 'user' in form.fields
    assert 'parent' in UserTaskStatusAdmin.readonly_fields
    assert staff_client.get(reverse('admin:user_tasks_usertaskartifact_change',
                                    args=[create_artifact(child).pk])).status_code == 200


def test_cancel_selected_action(staff_client, owner):
    pending = create_status(owner, 1)
    running = create_status(owner, 2, state=UserTaskStatus.IN_PROGRESS)
    done = create_status(owner, 3, state=UserTaskStatus.SUCCEEDED)
    response = staff_client.post(STATUS_LIST, {
        'action': 'cancel_selected', '_selected_action': [pending.pk, running.pk, done.pk]}, follow=True)
    assert response.status_code == 200
    states = dict(UserTaskStatus.objects.values_list('pk', 'state'))
    assert states == {pending.pk: 'Canceled', running.pk: 'Canceled', done.pk: 'Succeeded'}
    assert 'Canceled 2 tasks.' in response.content.decode()


def test_delete_finished_action_keeps_running_tasks(staff_client, owner):
    done = create_status(owner, 1, state=UserTaskStatus.SUCCEEDED)
    create_artifact(done)
    failed = create_status(owner, 2, state=UserTaskStatus.FAILED)
    running = create_status(owner, 3, state=UserTaskStatus.IN_PROGRESS)
    ended_container = create_status(owner, 4, is_container=True, task_class='celery.group', state='Failed')
    busy_child = create_status(owner, 5, parent=ended_container, state=UserTaskStatus.IN_PROGRESS)
    response = staff_client.post(STATUS_LIST, {
        'action': 'delete_finished',
        '_selected_action': [done.pk, failed.pk, running.pk, ended_container.pk]}, follow=True)
    assert response.status_code == 200
    assert set(UserTaskStatus.objects.values_list('pk', flat=True)) == {running.pk, ended_container.pk, busy_child.pk}
    assert not UserTaskArtifact.objects.exists()
    assert 'Deleted 2 finished tasks.' in response.content.decode()


def _bulk(user, count, start=0):
    UserTaskStatus.objects.bulk_create([
        UserTaskStatus(user=user, task_id=f'admin-{start + n}', task_class=f'tests.tasks.t{n % 3}',
                       name=f'bulk {start + n}', total_steps=2)
        for n in range(count)
    ])
    statuses = UserTaskStatus.objects.filter(task_id__in=[f'admin-{start + n}' for n in range(count)])
    UserTaskArtifact.objects.bulk_create([UserTaskArtifact(status=s, text='t') for s in statuses])


def _changelist_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [q['sql'] for q in queries.captured_queries]


@pytest.mark.parametrize('url', [STATUS_LIST, ARTIFACT_LIST])
def test_changelist_queries_are_constant_and_counts_bounded(staff_client, owner, url):
    _bulk(owner, 1)
    few = _changelist_queries(staff_client, url)
    _bulk(owner, 299, start=1)
    many = _changelist_queries(staff_client, url)
    assert len(few) == len(many)
    counts = [sql for sql in many if 'COUNT(' in sql.upper()]
    assert counts, 'the paginator counts (boundedly)'
    for sql in counts:
        assert 'LIMIT' in sql.upper(), f'unbounded COUNT: {sql}'


def test_capped_count_paginator(staff_client, owner):
    _bulk(owner, 8)
    with mock.patch.object(CappedCountPaginator, 'cap', 5):
        assert CappedCountPaginator(UserTaskStatus.objects.order_by('id'), 2).count == 5
        response = staff_client.get(STATUS_LIST)
        assert response.context['cl'].result_count == 5
    assert CappedCountPaginator(UserTaskStatus.objects.order_by('id'), 2).count == 8
    assert CappedCountPaginator([1, 2, 3], 2).count == 3


def test_search_by_a_uuid_uses_only_the_unique_columns(staff_client, owner):
    target = create_status(owner, 1)
    by_task_id = create_status(owner, 2, task_id='0b7e0f4c-9a1d-4d3e-8f2a-5b6c7d8e9f10')
    create_status(owner, 3, name=str(target.uuid))  # a name holding the uuid is not a match
    with CaptureQueriesContext(connection) as queries:
        assert _names(staff_client.get(STATUS_LIST, {'q': f' {target.uuid} '})) == [target.name]
    assert not any('LIKE' in q['sql'].upper() for q in queries.captured_queries)
    assert _names(staff_client.get(STATUS_LIST, {'q': by_task_id.task_id.upper()})) == [by_task_id.name]
    artifact = create_artifact(by_task_id, name='by task id')
    assert _names(staff_client.get(ARTIFACT_LIST, {'q': by_task_id.task_id})) == ['by task id']
    assert _names(staff_client.get(ARTIFACT_LIST, {'q': str(artifact.uuid)})) == ['by task id']

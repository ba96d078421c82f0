"""
Issue 12, as users meet it: deletes stop the work and leave no files, bad input is never a
500, pages show only what the viewer may see and cannot be framed (unit layer, SQLite;
the PostgreSQL NUL cases and the real-worker delete are in tests/integration/test_safety.py).
"""
import json
import os
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import HttpResponse
from django.test import Client, RequestFactory, TestCase
from django.urls import reverse
from rest_framework.test import APIClient

from tests.rest_helpers import API, create_artifact, create_status
from user_tasks import pages
from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.page_headers import no_framing
from user_tasks.rules import add_rules
from user_tasks.tasks import terminate_canceled_task

S = UserTaskStatus
pytestmark = [pytest.mark.urls('tests.urls_with_pages')]


@pytest.fixture(autouse=True)
def revoke():
    with mock.patch('user_tasks.signals.celery_app.control.revoke') as revoke:
        yield revoke


@pytest.fixture
def users(django_user_model):
    add_rules()
    return {
        'a': django_user_model.objects.create_user('alice', 'a@example.com'),
        'b': django_user_model.objects.create_user('bob', 'b@example.com'),
        'staff': django_user_model.objects.create_user('staffer', 's@example.com', is_staff=True),
        'root': django_user_model.objects.create_superuser('root', 'r@example.com', 'pw'),
    }


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def with_file(status, name='export.tar.gz'):
    artifact = create_artifact(status, text='')
    artifact.file.save(name, ContentFile(b'secret bytes'))
    return artifact, artifact.file.path


# -- 2. a delete stops the work -----------------------------------------------------------------

@pytest.mark.django_db
def test_deleted_running_task_stops_at_its_next_progress_call(users):
    row = create_status(users['a'], state=S.IN_PROGRESS)
    in_worker = S.objects.get(pk=row.pk)  # the running body's own instance
    api = APIClient()
    api.force_authenticate(users['a'])
    assert api.delete(f'{API}tasks/{row.uuid}/').status_code == 204
    assert not S.objects.filter(pk=row.pk).exists()
    with pytest.raises(TaskCanceledException, match='deleted'):
        in_worker.increment_completed_steps()
    with pytest.raises(TaskCanceledException, match='deleted'):
        in_worker.set_state('Still exporting')


@pytest.mark.django_db
def test_deleted_container_is_not_a_cancellation_for_its_own_instance(users):
    container = create_status(users['a'], is_container=True, task_class='celery.group')
    stale = S.objects.get(pk=container.pk)
    container.delete()
    stale.increment_completed_steps()  # containers never raise: only a task body stops


@pytest.mark.django_db
def test_delete_of_a_waiting_task_revokes_it(users, revoke):
    row = create_status(users['a'], state=S.PENDING)
    api = APIClient()
    api.force_authenticate(users['a'])
    assert api.delete(f'{API}tasks/{row.uuid}/').status_code == 204
    revoke.assert_called_once_with(row.task_id)


@pytest.mark.django_db
def test_delete_of_a_running_task_schedules_its_termination(users, settings):
    settings.USER_TASKS_TERMINATE_AFTER = {'tests.tasks.sample_task': 7}
    row = create_status(users['a'], state=S.IN_PROGRESS)
    api = APIClient()
    api.force_authenticate(users['a'])
    with mock.patch.object(terminate_canceled_task, 'apply_async') as apply_async:
        # Runs the on-commit callbacks whether or not TestCase's atomic blocks count as commits.
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert api.delete(f'{API}tasks/{row.uuid}/').status_code == 204
    assert mock.call((row.task_id,), {'deleted': True}, countdown=7) in apply_async.call_args_list


@pytest.mark.django_db
def test_terminate_acts_on_a_deleted_row_only_when_told_it_was_deleted(revoke):
    assert terminate_canceled_task('gone-task') is False
    revoke.assert_not_called()
    assert terminate_canceled_task('gone-task', deleted=True) is True
    revoke.assert_called_once_with('gone-task', terminate=True, signal='SIGTERM')


@pytest.mark.django_db
def test_admin_delete_page_cancels_a_running_task_first(users):
    row = create_status(users['a'], state=S.IN_PROGRESS)
    in_worker = S.objects.get(pk=row.pk)
    url = reverse('admin:user_tasks_usertaskstatus_delete', args=[row.pk])
    seen = []
    real_cancel = S.cancel
    with mock.patch.object(S, 'cancel', lambda self: seen.append(self.pk) or real_cancel(self)):
        assert logged_in(users['root']).post(url, {'post': 'yes'}).status_code == 302
    assert seen == [row.pk]
    assert not S.objects.filter(pk=row.pk).exists()
    with pytest.raises(TaskCanceledException):
        in_worker.increment_completed_steps()


# -- 3. files leave storage with their rows, after commit ---------------------------------------

def _delete_via_api(users, status):
    api = APIClient()
    api.force_authenticate(users['a'])
    assert api.delete(f'{API}tasks/{status.uuid}/').status_code == 204


def _delete_via_admin_page(users, status):
    url = reverse('admin:user_tasks_usertaskstatus_delete', args=[status.pk])
    assert logged_in(users['root']).post(url, {'post': 'yes'}).status_code == 302


def _delete_via_admin_action(users, status):
    data = {'action': 'delete_selected', '_selected_action': [status.pk], 'post': 'yes'}
    assert logged_in(users['root']).post(reverse('admin:user_tasks_usertaskstatus_changelist'), data).status_code == 302


def _delete_finished_action(users, status):
    data = {'action': 'delete_finished', '_selected_action': [status.pk]}
    assert logged_in(users['root']).post(reverse('admin:user_tasks_usertaskstatus_changelist'), data).status_code == 302


def _delete_artifact_in_admin(users, status):
    artifact = status.artifacts.get()
    url = reverse('admin:user_tasks_usertaskartifact_delete', args=[artifact.pk])
    assert logged_in(users['root']).post(url, {'post': 'yes'}).status_code == 302


def _delete_parent(users, status):
    status.parent.delete()  # the cascade from a container


def _delete_user(users, status):
    get_user_model().objects.filter(pk=status.user_id).delete()  # the cascade from the user


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('route', [_delete_via_api, _delete_via_admin_page, _delete_via_admin_action,
                                   _delete_finished_action, _delete_artifact_in_admin, _delete_parent, _delete_user])
def test_deleting_removes_the_artifact_file(users, media, route):
    parent = create_status(users['a'], 1, is_container=True, task_class='celery.group', state=S.SUCCEEDED)
    status = create_status(users['a'], 2, parent=parent, state=S.SUCCEEDED)
    _, path = with_file(status)
    keep, kept_path = with_file(create_status(users['b'], 3, state=S.SUCCEEDED), 'other.tar.gz')
    assert os.path.exists(path)
    route(users, S.objects.select_related('parent').get(pk=status.pk))
    assert not UserTaskArtifact.objects.filter(status_id=status.pk).exists()
    assert not os.path.exists(path)
    assert os.path.exists(kept_path) and UserTaskArtifact.objects.filter(pk=keep.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_file_is_removed_only_after_commit_and_kept_on_rollback(users, media):
    status = create_status(users['a'], state=S.SUCCEEDED)
    _, path = with_file(status)
    pk = status.pk
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            status.delete()
            assert os.path.exists(path)  # not before the commit
            raise RuntimeError('roll back')
    assert os.path.exists(path) and S.objects.filter(pk=pk).exists()
    with transaction.atomic():
        S.objects.get(pk=pk).delete()
        assert os.path.exists(path)
    assert not os.path.exists(path)


# -- 4. NUL bytes (unit layer; PostgreSQL in the integration layer) ----------------------------

@pytest.mark.django_db
@pytest.mark.parametrize('query', ['scope=all&state=%00', 'scope=all&task_class=a%00b', 'scope=all&user=%00',
                                   'state=%00', '%00=1'])
def test_pages_refuse_a_nul_byte_in_a_filter(users, query):
    response = logged_in(users['root']).get(f'/user_tasks/?{query}')
    assert response.status_code == 400
    assert b'NUL' in response.content


@pytest.mark.django_db
@pytest.mark.parametrize('model', ['usertaskstatus', 'usertaskartifact'])
@pytest.mark.parametrize('query', ['state=%00', 'task_class=%00', 'q=%00', 'user__id__exact=%00'])
def test_admin_treats_a_nul_byte_as_an_invalid_filter(users, model, query):
    url = reverse(f'admin:user_tasks_{model}_changelist')
    response = logged_in(users['root']).get(f'{url}?{query}')
    assert response.status_code == 302 and response['Location'].endswith('?e=1')


# -- 5. error text ------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize('text', ['[' * 200000 + ']' * 200000, '{"a": ' * 50000 + '1' + '}' * 50000,
                                  '{"raw_error_msg": "' + 'x' * 50000 + '"}', 'not json \x00 <b>'])
def test_any_error_text_renders_bounded(users, text):
    status = create_status(users['a'], state=S.FAILED)
    create_artifact(status, name='Error', text=text)
    client = logged_in(users['a'])
    page = client.get(reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid}))
    poll = client.get(reverse('user_tasks:task-poll', kwargs={'uuid': status.uuid}))
    assert page.status_code == 200 and poll.status_code == 200
    shown = json.loads(poll.content)['artifacts'][0]['text']
    assert len(shown) <= pages.ERROR_TEXT_LIMIT + 60
    if len(text) > pages.ERROR_TEXT_LIMIT:
        assert 'more characters' in shown
    if text.startswith('{"raw'):
        assert shown.startswith('x' * 100)
    assert '<b>' not in page.content.decode()  # still escaped


# -- 6. aggregates only from visible rows --------------------------------------------------------

@pytest.mark.django_db
def test_staff_task_class_suggestions_come_only_from_visible_rows(users):
    create_status(users['staff'], 1, task_class='tasks.visible_export')
    create_status(users['b'], 2, task_class='tasks.secret_import_of_bob')
    html = logged_in(users['staff']).get('/user_tasks/?scope=all').content.decode()
    assert 'tasks.visible_export' in html
    assert 'secret_import_of_bob' not in html
    every = logged_in(users['root']).get('/user_tasks/?scope=all').content.decode()
    assert 'secret_import_of_bob' in every  # a superuser sees every row, so every class


# -- 7. framing and HEAD --------------------------------------------------------------------------

@pytest.mark.django_db
def test_pages_refuse_framing_and_answer_head_like_get(users, media):
    status = create_status(users['a'], state=S.SUCCEEDED)
    artifact, _ = with_file(status)
    client = logged_in(users['a'])
    urls = ['/user_tasks/', reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid}),
            reverse('user_tasks:task-poll', kwargs={'uuid': status.uuid}),
            reverse('user_tasks:artifact-download', kwargs={'uuid': artifact.uuid})]
    for url in urls:
        get, head = client.get(url), client.head(url)
        assert get.status_code == head.status_code == 200, url
        for response in (get, head):
            assert response['X-Frame-Options'] == 'DENY', url
            assert "frame-ancestors 'none'" in response['Content-Security-Policy'], url
        assert head['Content-Type'] == get['Content-Type'], url
    cancel = client.post(reverse('user_tasks:task-cancel', kwargs={'uuid': status.uuid}))
    assert cancel['X-Frame-Options'] == 'DENY'


def test_no_framing_extends_a_csp_the_view_set_and_keeps_its_own_frame_ancestors():
    def strict(request):
        response = HttpResponse()
        response['Content-Security-Policy'] = "default-src 'self';"
        return response

    def own(request):
        response = HttpResponse()
        response['Content-Security-Policy'] = "frame-ancestors 'self'"
        response['X-Frame-Options'] = 'SAMEORIGIN'
        return response

    request = RequestFactory().get('/')
    assert no_framing(strict)(request)['Content-Security-Policy'] == "default-src 'self'; frame-ancestors 'none'"
    kept = no_framing(own)(request)
    assert (kept['Content-Security-Policy'], kept['X-Frame-Options']) == ("frame-ancestors 'self'", 'SAMEORIGIN')

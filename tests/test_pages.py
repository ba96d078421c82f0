"""The status pages (``user_tasks.pages``), through Django's test client: no browser, no JavaScript."""
import json
import re
import struct
from datetime import timedelta
from uuid import uuid4

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.rest_fixtures import (  # noqa: F401
    create_artifact,
    create_status,
    owner,
    rules_added,
    stranger,
    superuser,
)
from user_tasks import pages
from user_tasks.models import UserTaskStatus

pytestmark = [pytest.mark.django_db, pytest.mark.urls('tests.urls_with_pages')]


def page(status):
    return reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})


def poll(status):
    return reverse('user_tasks:task-poll', kwargs={'uuid': status.uuid})


def cancel(status):
    return reverse('user_tasks:task-cancel', kwargs={'uuid': status.uuid})


def download(artifact):
    return reverse('user_tasks:artifact-download', kwargs={'uuid': artifact.uuid})


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.MEDIA_URL = '/media/'
    return tmp_path


@pytest.fixture
def file_artifact(owner, media):  # noqa: F811
    artifact = create_artifact(create_status(owner, 99, state=UserTaskStatus.SUCCEEDED, completed_steps=4), text='')
    artifact.file.save('course-v1_Org_Demo_2026.tar.gz', ContentFile(b'\x1f\x8b tarball bytes'))
    return artifact


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


# -- access -----------------------------------------------------------------------------

def test_anonymous_users_are_sent_to_the_login_page(owner, file_artifact, settings):  # noqa: F811
    settings.LOGIN_URL = '/login/'
    status = create_status(owner)
    client = Client()
    for url in ['/user_tasks/', page(status), poll(status), download(file_artifact)]:
        response = client.get(url)
        assert response.status_code == 302
        assert response['Location'].startswith(f'/login/?next={url}')
    assert client.post(cancel(status)).status_code == 302
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.PENDING


def test_another_user_gets_404_everywhere(owner, stranger, file_artifact):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    client = as_user(stranger)
    assert client.get(page(status)).status_code == 404
    assert client.get(poll(status)).status_code == 404
    assert client.post(cancel(status)).status_code == 404
    assert client.get(download(file_artifact)).status_code == 404
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.IN_PROGRESS
    # Not even its name shows in the stranger's list.
    assert status.name.encode() not in client.get('/user_tasks/').content


def test_a_missing_task_is_the_same_404(stranger):  # noqa: F811
    client = as_user(stranger)
    missing = UserTaskStatus(uuid=uuid4())
    assert client.get(page(missing)).status_code == 404
    assert client.get(poll(missing)).status_code == 404
    assert client.get(reverse('user_tasks:artifact-download', kwargs={'uuid': uuid4()})).status_code == 404


def test_a_superuser_sees_and_cancels_any_task(owner, superuser, file_artifact):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    client = as_user(superuser)
    assert client.get(page(status)).status_code == 200
    assert client.get(poll(status)).status_code == 200
    assert client.get(download(file_artifact)).status_code == 200
    assert client.post(cancel(status)).status_code == 302
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.CANCELED


def test_permissions_come_from_has_perm(owner, monkeypatch):  # noqa: F811
    """A host's own rules decide, as for the REST API: no view permission, no page."""
    import rules
    status = create_status(owner)
    monkeypatch.setitem(rules.permissions.permissions, 'user_tasks.view_usertaskstatus', rules.always_deny)
    assert as_user(owner).get(page(status)).status_code == 404


def test_view_without_cancel_permission_is_403(owner, monkeypatch):  # noqa: F811
    import rules
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    monkeypatch.setitem(rules.permissions.permissions, 'user_tasks.cancel_usertaskstatus', rules.always_deny)
    client = as_user(owner)
    assert 'ut-cancel-form' not in client.get(page(status)).content.decode()
    assert client.post(cancel(status)).status_code == 403
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.IN_PROGRESS


# -- the lists --------------------------------------------------------------------------

def test_my_tasks_are_mine_newest_first_top_level_only(owner, stranger):  # noqa: F811
    older = create_status(owner, 1, name='Older task')
    newer = create_status(owner, 2, name='Newer task', state='Exporting', completed_steps=2)
    create_status(owner, 3, name='A child', parent=newer)
    create_status(stranger, 4, name='Not mine')
    html = as_user(owner).get('/user_tasks/').content.decode()
    assert html.index('Newer task') < html.index('Older task')
    assert 'A child' not in html and 'Not mine' not in html
    assert f'href="{page(older)}"' in html
    assert '<progress max="100" value="50" aria-label="Progress of Newer task">' in html
    assert 'Exporting' in html and 'just now</time>' in html
    assert 'All tasks' not in html  # not staff


def test_my_tasks_are_paginated(owner):  # noqa: F811
    for n in range(pages.PAGE_SIZE + 2):
        create_status(owner, n, name=f'Task number {n:03d}')
    client = as_user(owner)
    first = client.get('/user_tasks/').content.decode()
    assert first.count('<tr>') == pages.PAGE_SIZE + 1  # the header row too
    assert 'rel="next" href="?page=2"' in first and 'rel="prev"' not in first
    second = client.get('/user_tasks/?page=2').content.decode()
    assert 'Task number 000' in second and 'Task number 001' in second and 'Task number 026' not in second
    assert 'rel="prev" href="?page=1"' in second and 'rel="next"' not in second
    assert client.get('/user_tasks/?page=nonsense').status_code == 200


def test_staff_see_all_tasks_with_filters(owner, stranger, superuser):  # noqa: F811
    superuser.is_staff = True
    superuser.save()
    create_status(owner, 1, name='Export A', task_class='app.tasks.export', state=UserTaskStatus.SUCCEEDED)
    create_status(owner, 2, name='Import B', task_class='app.tasks.import_', state='Unpacking')
    create_status(stranger, 3, name='Export C', task_class='app.tasks.export', state=UserTaskStatus.FAILED)
    client = as_user(superuser)
    mine = client.get('/user_tasks/').content.decode()
    assert 'Export A' not in mine and 'aria-current="page">My tasks' in mine
    every = client.get('/user_tasks/?scope=all').content.decode()
    assert all(name in every for name in ('Export A', 'Import B', 'Export C'))
    assert 'aria-current="page">All tasks' in every and '<label for="ut-filter-state">' in every

    def names(query):
        html = client.get(f'/user_tasks/?scope=all&{query}').content.decode()
        return sorted(re.findall(r'>((?:Export|Import) \w)</a>', html))
    assert names('task_class=app.tasks.export') == ['Export A', 'Export C']
    assert names('user=stranger') == ['Export C']
    assert names('state=Failed') == ['Export C']
    assert names('state=In+Progress') == ['Import B']  # custom stages are in progress
    assert names('state=Succeeded&user=owner') == ['Export A']


def test_scope_all_is_ignored_for_non_staff(owner, stranger):  # noqa: F811
    create_status(stranger, name='Not mine')
    html = as_user(owner).get('/user_tasks/?scope=all').content.decode()
    assert 'Not mine' not in html and 'My tasks' in html


# -- one task, without JavaScript ---------------------------------------------------------

def test_task_page_renders_everything_without_javascript(owner, media):  # noqa: F811
    started = timezone.now() - timedelta(seconds=10)
    status = create_status(owner, name='Export of course', state='Compressing', completed_steps=1,
                           attempts=2, started=started)
    output = create_artifact(status, text='')
    output.file.save('out.txt', ContentFile(b'data'))
    create_artifact(status, name='BASE_URL', text='', url='https://studio.example.com/course')
    create_artifact(status, name='Notes', text='Exported 3 files.')
    html = as_user(owner).get(page(status)).content.decode()
    assert '<h1 id="ut-name">Export of course</h1>' in html
    assert re.search(r'id="ut-state"[^>]*role="status" aria-live="polite"[^>]*>In Progress<', html)
    assert '<dd id="ut-stage">Compressing</dd>' in html
    assert '<dd id="ut-attempts">2</dd>' in html
    assert '<label for="ut-progress">Progress</label>' in html
    assert '<progress id="ut-progress" max="100" value="25"' in html
    assert '25% complete' in html and '1 of 4 steps' in html
    # 1 step in 10 s, 3 to go: about 30 s left.
    assert re.search(r'About (29|30|31) seconds left', html)
    assert f'href="{download(output)}" download="out.txt">Download out.txt</a>' in html
    assert 'href="https://studio.example.com/course" rel="noopener noreferrer nofollow">BASE_URL</a>' in html
    assert 'Exported 3 files.' in html
    # A real form: cancelling works without JavaScript too.
    assert re.search(rf'<form id="ut-cancel-form" class="ut-cancel" method="post" action="{cancel(status)}">\s*'
                     r'<input type="hidden" name="csrfmiddlewaretoken"', html)
    assert '<noscript>' in html and f'href="{page(status)}">Reload' in html
    assert 'pages.js" defer' in html and '<meta http-equiv="refresh"' not in html


def test_failed_task_shows_its_error_as_an_alert(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.FAILED)
    create_artifact(status, name='Error', text=json.dumps({'raw_error_msg': 'Unknown course: <b>x</b>'}))
    html = as_user(owner).get(page(status)).content.decode()
    assert ('<li class="ut-error" role="alert"><strong>Error:</strong> '
            '<span class="ut-error-text">Unknown course: &lt;b&gt;x&lt;/b&gt;</span></li>') in html
    assert 'ut-cancel-form' not in html and '<noscript>' not in html
    assert 'data-final="true"' in html


def test_container_page_lists_its_children(owner):  # noqa: F811
    chain = create_status(owner, 1, name='Chain', task_class='celery.chain', is_container=True, total_steps=2,
                          state=UserTaskStatus.IN_PROGRESS)
    first = create_status(owner, 2, name='Step one', parent=chain, state=UserTaskStatus.SUCCEEDED, total_steps=1,
                          completed_steps=1)
    second = create_status(owner, 3, name='Step two', parent=chain, total_steps=1)
    client = as_user(owner)
    html = client.get(page(chain)).content.decode()
    assert html.index(f'href="{page(first)}">Step one') < html.index(f'href="{page(second)}">Step two')
    assert 'aria-label="Progress of Step one">100%' in html
    child = client.get(page(second)).content.decode()
    assert f'href="{page(chain)}">Chain</a>' in child  # breadcrumbs back to the container


def test_text_artifact_is_escaped_and_url_schemes_are_checked(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.SUCCEEDED)
    create_artifact(status, name='Log', text='<script>alert(1)</script>')
    artifact = create_artifact(status, name='Odd', text='', url='ftp://example.com/file')
    html = as_user(owner).get(page(status)).content.decode()
    assert '<script>alert(1)</script>' not in html and '&lt;script&gt;alert(1)&lt;/script&gt;' in html
    assert 'href="ftp://' not in html and artifact.name in html


# -- the poll feed --------------------------------------------------------------------------

def test_poll_returns_the_snapshot_with_an_etag(owner):  # noqa: F811
    status = create_status(owner, state='Exporting', completed_steps=1)
    response = as_user(owner).get(poll(status))
    assert response.status_code == 200 and response['Content-Type'] == 'application/json'
    assert re.fullmatch(r'"[0-9a-f]{32}"', response['ETag'])
    assert 'no-cache' in response['Cache-Control']
    data = response.json()
    assert data['state_text'] == 'In Progress' and data['stage'] == 'Exporting'
    assert (data['percent'], data['final'], data['cancelable']) == (25, False, True)
    assert set(data['fragments']) == {'artifacts', 'children', 'retry'}


def test_unchanged_poll_is_a_304_after_one_query_of_the_task(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    client = as_user(owner)
    etag = client.get(poll(status))['ETag']
    client.get('/user_tasks/')  # warm the session, so only this request's own queries count
    with CaptureQueriesContext(connection) as queries:
        response = client.get(poll(status), HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and response['ETag'] == etag and response.content == b''
    task_queries = [q['sql'] for q in queries.captured_queries if 'user_tasks_usertaskstatus' in q['sql']]
    assert len(task_queries) == 1, task_queries
    # Session and user lookups are Django's; nothing else runs.
    assert len(queries.captured_queries) == 3, [q['sql'] for q in queries.captured_queries]
    # The page itself carries the current ETag, so its first poll is already a 304.
    assert f'data-etag="{etag.replace(chr(34), "&quot;")}"' in client.get(page(status)).content.decode()


def test_poll_etag_changes_with_progress_artifacts_and_children(owner):  # noqa: F811
    chain = create_status(owner, 1, task_class='celery.chain', is_container=True, total_steps=2,
                          state=UserTaskStatus.IN_PROGRESS)
    child = create_status(owner, 2, parent=chain, total_steps=2)
    client = as_user(owner)
    seen = [client.get(poll(chain))['ETag']]

    def changed():
        response = client.get(poll(chain), HTTP_IF_NONE_MATCH=seen[-1])
        assert response.status_code == 200
        seen.append(response['ETag'])
        return response.json()

    UserTaskStatus.objects.filter(pk=child.pk).update(state=UserTaskStatus.IN_PROGRESS,
                                                     modified=timezone.now() + timedelta(seconds=1))
    assert changed()['children'][0]['state'] == UserTaskStatus.IN_PROGRESS
    create_artifact(chain, name='Output', text='partial')
    assert changed()['artifacts'][0]['text'] == 'partial'
    chain.increment_completed_steps()
    assert changed()['completed_steps'] == 1
    assert len(set(seen)) == 4
    # A weak or listed validator matches too.
    assert client.get(poll(chain), HTTP_IF_NONE_MATCH=f'"x", W/{seen[-1]}').status_code == 304


# -- cancel --------------------------------------------------------------------------------

def test_cancel_needs_the_csrf_token(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(cancel(status)).status_code == 403
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.IN_PROGRESS
    html = client.get(page(status)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(cancel(status), {'csrfmiddlewaretoken': token})
    assert response.status_code == 302 and response['Location'] == page(status)
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.CANCELED
    html = client.get(page(status)).content.decode()
    assert '>Canceled</span>' in html and 'ut-cancel-form' not in html


def test_cancel_answers_json_to_the_script_and_refuses_get(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.IN_PROGRESS)
    client = as_user(owner)
    assert client.get(cancel(status)).status_code == 405
    response = client.post(cancel(status), HTTP_ACCEPT='application/json')
    data = response.json()
    assert (data['state'], data['final'], data['cancelable']) == (UserTaskStatus.CANCELED, True, False)
    assert response['ETag'] == client.get(poll(status))['ETag']


def test_cancel_leaves_a_finished_task_alone_and_ignores_foreign_next(owner):  # noqa: F811
    status = create_status(owner, state=UserTaskStatus.SUCCEEDED)
    response = as_user(owner).post(cancel(status), {'next': 'https://evil.example.com/'})
    assert response['Location'] == page(status)
    assert UserTaskStatus.objects.get(pk=status.pk).state == UserTaskStatus.SUCCEEDED


# -- downloads -----------------------------------------------------------------------------

def test_download_streams_the_file_as_an_attachment(owner, file_artifact):  # noqa: F811
    response = as_user(owner).get(download(file_artifact))
    assert response.status_code == 200 and response.streaming
    assert b''.join(response.streaming_content) == b'\x1f\x8b tarball bytes'
    assert response['Content-Type'] == 'application/gzip'
    assert response['Content-Disposition'] == 'attachment; filename="course-v1_Org_Demo_2026.tar.gz"'
    assert response['X-Content-Type-Options'] == 'nosniff'


def test_download_content_type_comes_from_the_name(owner, media):  # noqa: F811
    status = create_status(owner)
    client = as_user(owner)
    for name, content_type in [('report.csv', 'text/csv'), ('data.json', 'application/json'),
                               ('blob.unknownext', 'application/octet-stream')]:
        artifact = create_artifact(status, text='')
        artifact.file.save(name, ContentFile(b'x'))
        response = client.get(download(artifact))
        assert response['Content-Type'] == content_type, name
        assert response['Content-Disposition'] == f'attachment; filename="{name}"'


def test_download_of_no_file_or_a_lost_file_is_404(owner, file_artifact, media):  # noqa: F811
    text_only = create_artifact(file_artifact.status, text='no file')
    client = as_user(owner)
    assert client.get(download(text_only)).status_code == 404
    (media / file_artifact.file.name).unlink()
    assert client.get(download(file_artifact)).status_code == 404


def test_rest_file_field_points_at_the_download_view_when_enabled(owner, file_artifact):  # noqa: F811
    from rest_framework.test import APIClient
    api = APIClient()
    api.force_authenticate(owner)
    url = f'/api/tasks/v0/artifacts/{file_artifact.uuid}/'
    assert api.get(url).json()['file'] == file_artifact.file.url
    with override_settings(USER_TASKS_ARTIFACT_DOWNLOADS=True):
        assert api.get(url).json()['file'] == f'http://testserver{download(file_artifact)}'


# -- translation ------------------------------------------------------------------------------

def _write_mo(path, messages):
    """A GNU gettext catalog holding ``messages`` (msgid -> msgstr)."""
    entries = sorted({'': 'Content-Type: text/plain; charset=UTF-8\n', **messages}.items())
    ids = [key.encode() for key, _ in entries]
    strs = [value.encode() for _, value in entries]
    header = 7 * 4
    table = header + 2 * 8 * len(entries)
    offsets, data = [], b''
    for text in ids + strs:
        offsets.append((len(text), table + len(data)))
        data += text + b'\0'
    head = struct.pack('<7I', 0x950412de, 0, len(entries), header, header + 8 * len(entries), 0, 0)
    body = b''.join(struct.pack('<2I', *pair) for pair in offsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body + data)


def test_pages_are_translated(owner, settings, tmp_path):  # noqa: F811
    _write_mo(tmp_path / 'fr' / 'LC_MESSAGES' / 'django.mo', {
        'My tasks': 'Mes tâches', 'Succeeded': 'Réussie (catalogue de test)', 'Progress': 'Progression',
        'Cancel this task': 'Annuler cette tâche', 'Results': 'Résultats',
    })
    settings.LOCALE_PATHS = [str(tmp_path)]
    done = create_status(owner, 1, name='Done', state=UserTaskStatus.SUCCEEDED)
    running = create_status(owner, 2, name='Running', state=UserTaskStatus.IN_PROGRESS)
    client = as_user(owner)
    # The host's LocaleMiddleware picks the language the browser asks for.
    client.defaults['HTTP_ACCEPT_LANGUAGE'] = 'fr'
    listing = client.get('/user_tasks/').content.decode()
    detail = client.get(page(done)).content.decode()
    running_page = client.get(page(running)).content.decode()
    snapshot = client.get(poll(done)).json()
    assert '<html lang="fr" dir="ltr">' in listing and '<h1>Mes tâches</h1>' in listing
    assert 'Réussie (catalogue de test)' in listing and 'Réussie (catalogue de test)' in detail
    assert '<label for="ut-progress">Progression</label>' in detail and '>Résultats</h2>' in detail
    assert 'Annuler cette tâche' in running_page
    assert snapshot['state_text'] == 'Réussie (catalogue de test)'
    assert 'dir="rtl"' in client.get('/user_tasks/', HTTP_ACCEPT_LANGUAGE='ar').content.decode()

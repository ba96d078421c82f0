"""
The status pages in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The pages are served by pytest-django's live server and the tasks run in the integration
suite's real worker subprocess, on the same database.  The tests watch the page update
itself (no reload), download an artifact, cancel a running task with the keyboard, and
check that another user gets 404.  Screenshots of the list and task pages are written to
the test's temporary folder, and to ``$USER_TASKS_SCREENSHOTS`` when set (the docs' copies
come from ``USER_TASKS_SCREENSHOTS=docs/_static``).

No browser is ever downloaded: without ``/usr/bin/chromium`` (or ``$USER_TASKS_CHROMIUM``)
these tests skip saying so, and fail under ``CI=true`` (``.ci/run`` installs the package).
"""
import os
import time
from uuid import uuid4

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client

from tests.tasks import failing_task, flaky_task, sample_task, stepping_task
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.rules import add_rules

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CHROMIUM = os.environ.get('USER_TASKS_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run', '--disable-dev-shm-usage']
IN_CI = os.environ.get('CI', '').lower() == 'true'
WAIT_MS = 30000


def _unavailable(message):
    if IN_CI:
        pytest.fail(f'{message} (CI=true: the browser tests must run)', pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope='module')
def browser():
    """One headless Chromium for the module (Playwright's sync API, Debian's browser binary)."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f'no Chromium at {CHROMIUM} (apt-get install chromium)')
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable('the playwright package is not installed (pip install -e .[test])')
    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between browser steps are ordinary synchronous code.
    saved = os.environ.get('DJANGO_ALLOW_ASYNC_UNSAFE')
    os.environ['DJANGO_ALLOW_ASYNC_UNSAFE'] = 'true'
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if saved is None:
            os.environ.pop('DJANGO_ALLOW_ASYNC_UNSAFE', None)
        else:
            os.environ['DJANGO_ALLOW_ASYNC_UNSAFE'] = saved


@pytest.fixture
def site(live_server, settings, worker):
    """The live server's base URL, serving the pages (``tests.urls_with_pages``) with the owner-or-superuser rules."""
    add_rules()
    settings.ROOT_URLCONF = 'tests.urls_with_pages'
    return live_server.url


@pytest.fixture
def owner(site):
    return get_user_model().objects.create_user(f'owner-{uuid4().hex[:8]}', password='pw')


def open_as(browser, site, user, locale=None):
    """A browser page logged in as ``user`` (its session cookie, as after a login), in ``locale`` if given."""
    client = Client()
    client.force_login(user)
    options = {'locale': locale} if locale else {}  # the browser's language, its Accept-Language
    context = browser.new_context(accept_downloads=True, viewport={'width': 1000, 'height': 560}, **options)
    context.add_cookies([{'name': 'sessionid', 'value': client.cookies['sessionid'].value, 'url': site}])
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def wait_for_row(task_id, predicate=lambda row: True, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = UserTaskStatus.objects.filter(task_id=task_id).first()
        if row is not None and predicate(row):
            return row
        time.sleep(0.05)
    pytest.fail(f'task {task_id}: no matching row within {timeout} s; last: {row and (row.state, row.finished)}')
    return None


def screenshot(page, tmp_path, name):
    """Save a PNG of ``page`` under the test's folder and, if asked, ``$USER_TASKS_SCREENSHOTS``."""
    data = page.screenshot(full_page=True)
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 5000
    (tmp_path / name).write_bytes(data)
    target = os.environ.get('USER_TASKS_SCREENSHOTS')
    if target:
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, name), 'wb') as stream:
            stream.write(data)


def test_progress_moves_and_the_page_reaches_succeeded_without_reload(browser, site, owner, tmp_path):
    result = stepping_task.delay(owner.id, steps=10, delay=0.5)
    status = wait_for_row(result.id)
    status.set_name('Export of course-v1:DemoX+Physics+2026')
    page = open_as(browser, site, owner)
    polls = []
    page.on('request', lambda request: polls.append(time.monotonic()) if '/poll/' in request.url else None)
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    page.evaluate('window.__notReloaded = true')
    seen = set()
    shot = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = page.eval_on_selector('#ut-progress', 'element => element.value')
        seen.add(value)
        if not shot and 30 <= value < 100:
            page.wait_for_selector('#ut-eta:not([hidden])')
            screenshot(page, tmp_path, 'user-tasks-task.png')
            shot = True
        if page.inner_text('#ut-state') == 'Succeeded':
            break
        time.sleep(0.1)
    assert page.inner_text('#ut-state') == 'Succeeded'
    assert page.evaluate('window.__notReloaded') is True, 'the page was reloaded'
    assert page.eval_on_selector('#ut-progress', 'element => element.value') == 100
    assert page.inner_text('#ut-percent') == '100% complete'
    assert len([value for value in seen if 0 < value < 100]) >= 2, f'the bar did not move: {sorted(seen)}'
    assert shot, f'no screenshot mid-way: {sorted(seen)}'
    assert page.locator('#ut-cancel-form').count() == 0  # nothing left to cancel
    # Accessible names and roles the page promises.
    assert page.get_by_role('progressbar', name='Progress').count() == 1
    assert page.get_by_role('status').inner_text() == 'Succeeded'
    # Final: the page stops polling.
    time.sleep(0.5)
    count = len(polls)
    time.sleep(3)
    assert len(polls) == count, 'still polling after the task ended'
    page.context.close()


def test_artifact_appears_live_and_downloads(browser, site, owner):
    result = stepping_task.delay(owner.id, steps=10, delay=0.5)
    status = wait_for_row(result.id, lambda row: row.state == UserTaskStatus.IN_PROGRESS)
    page = open_as(browser, site, owner)
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    # The task's output arrives while the page is open, as a task writes it.
    content = 'name,score\nada,10\n'.encode() * 50
    artifact = UserTaskArtifact(status=status, name='Output')
    artifact.file.save(f'report-{uuid4().hex[:6]}.csv', ContentFile(content))
    link = page.locator('a.ut-download')
    link.wait_for()
    page.wait_for_function("document.querySelector('#ut-state').textContent === 'Succeeded'")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == os.path.basename(artifact.file.name)
    with open(download.path(), 'rb') as stream:
        assert stream.read() == content
    # An error shows as an alert.
    failed = failing_task.delay(owner.id, message='Disk full while writing the report')
    failed_status = wait_for_row(failed.id, lambda row: row.state == UserTaskStatus.FAILED)
    page.goto(f'{site}/user_tasks/{failed_status.uuid}/')
    assert 'Disk full while writing the report' in page.get_by_role('alert').inner_text()
    page.context.close()


def test_cancel_stops_a_running_task_and_the_page_shows_canceled(browser, site, owner, tmp_path):
    done = sample_task.delay(owner.id, label='import', steps=3)
    broken = failing_task.delay(owner.id, message='Unknown course')
    result = stepping_task.delay(owner.id, steps=200, delay=0.2)
    # Names as a site would give them (the screenshot of the list shows them).
    succeeded = wait_for_row(done.id, lambda row: row.state == UserTaskStatus.SUCCEEDED)
    succeeded.set_name('Import of course-v1:DemoX+Intro+2026')
    failed = wait_for_row(broken.id, lambda row: row.state == UserTaskStatus.FAILED)
    failed.set_name('Export of course-v1:DemoX+Old+2019')
    status = wait_for_row(result.id, lambda row: row.completed_steps >= 2)
    status.set_name('Long job of 200 items')
    page = open_as(browser, site, owner)
    page.goto(f'{site}/user_tasks/')
    assert page.get_by_role('link', name='Long job of 200 items').count() == 1
    screenshot(page, tmp_path, 'user-tasks-list.png')
    page.get_by_role('link', name='Long job of 200 items').click()
    page.wait_for_url(f'**/user_tasks/{status.uuid}/')
    page.evaluate('window.__notReloaded = true')
    # With the keyboard: focus the button, press Enter.
    page.get_by_role('button', name='Cancel this task').focus()
    page.keyboard.press('Enter')
    page.wait_for_function("document.querySelector('#ut-state').textContent === 'Canceled'")
    assert page.evaluate('window.__notReloaded') is True
    assert page.locator('#ut-cancel-form').count() == 0
    assert page.evaluate('document.activeElement.id') == 'ut-state'  # focus did not fall off the page
    stopped = wait_for_row(result.id, lambda row: row.finished is not None, timeout=15)
    assert stopped.state == UserTaskStatus.CANCELED and stopped.completed_steps < 200
    time.sleep(1)
    assert UserTaskStatus.objects.get(pk=status.pk).completed_steps == stopped.completed_steps
    page.context.close()


def test_another_user_gets_404(browser, site, owner):
    result = sample_task.delay(owner.id, label='private')
    status = wait_for_row(result.id, lambda row: row.state == UserTaskStatus.SUCCEEDED)
    artifact = status.artifacts.get()
    stranger = get_user_model().objects.create_user(f'stranger-{uuid4().hex[:8]}', password='pw')
    page = open_as(browser, site, stranger)
    response = page.goto(f'{site}/user_tasks/{status.uuid}/')
    assert response.status == 404
    poll = page.evaluate(f"fetch('/user_tasks/{status.uuid}/poll/').then(r => r.status)")
    assert poll == 404
    response = page.goto(f'{site}/user_tasks/artifacts/{artifact.uuid}/download/')
    assert response.status == 404
    page.goto(f'{site}/user_tasks/')
    assert page.get_by_text('Sample private').count() == 0
    page.context.close()


def test_try_again_appears_when_the_task_fails_and_starts_it_again(browser, site, owner, tmp_path):
    flag = tmp_path / 'service-down'
    flag.write_text('down')
    result = flaky_task.delay(owner.id, failure_flag=str(flag), label='report', delay=4)
    status = wait_for_row(result.id, lambda row: row.state == UserTaskStatus.IN_PROGRESS)
    page = open_as(browser, site, owner)
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    page.evaluate('window.__notReloaded = true')
    assert page.locator('#ut-retry-form').count() == 0  # not while it runs
    button = page.get_by_role('button', name='Try again')
    button.wait_for()  # appears as the task fails, without a reload
    assert page.inner_text('#ut-state') == 'Failed'
    assert page.evaluate('window.__notReloaded') is True
    flag.unlink()  # the service is back
    button.click()
    new = wait_for_row(result.id, lambda row: row.retried_as is not None).retried_as
    page.wait_for_url(f'**/user_tasks/{new}/')
    page.wait_for_function("document.querySelector('#ut-state').textContent === 'Succeeded'")
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    link = page.get_by_role('link', name='This task was tried again: see the new task')
    assert link.get_attribute('href') == f'/user_tasks/{new}/'
    assert page.locator('#ut-retry-form').count() == 0
    page.context.close()

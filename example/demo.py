"""``make demo``: user tasks end to end on SQLite, with a real Celery worker and the status pages.

Migrates the demo database, starts a ``celery worker`` (``filesystem://`` broker) and the
Django dev server as child processes, creates the user ``demo`` with a fresh password, and
starts four sample tasks: a Studio-style course export (a file artifact, visible stages;
published twice, as a double click does, it starts once), an export that fails, a chain
of two tasks and a long job to cancel.  It prints the URLs of the pages, the REST API and
the metrics, then follows the tasks until Ctrl-C.

With ``DEMO_ONCE=1`` it runs the scenario to its end instead: it cancels the long job
itself through the task page's Cancel form, checks every task over HTTP (pages, poll feed,
download, API, metrics), prints a summary and exits 0, or 1 when anything is not as expected.

Environment: ``DEMO_PORT`` (default 8000; 0, or a busy port, picks a free one),
``USER_TASKS_DEMO_VAR`` (where the database, broker and files go; default ``example/var``).
"""
import glob
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Running `python example/demo.py` puts example/ first on sys.path, where example/celery.py
# would shadow the real celery package; the project root belongs there instead.
sys.path[0] = REPO_ROOT
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'example.settings')

import django  # noqa: E402

django.setup()

from celery import chain  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

from example.demo_tasks import chain_step, long_job  # noqa: E402
from example.studio_export import export_name, export_olx  # noqa: E402
from user_tasks.models import UserTaskStatus  # noqa: E402

ONCE = os.environ.get('DEMO_ONCE', '') not in ('', '0')
DEMO_COURSE = 'course-v1:DemoX+Export+2026'
FINAL = set(UserTaskStatus.FINAL_STATES)


def metrics_path():
    """The metrics view's path when the project routes it (example/urls.py), else None."""
    try:
        return reverse('user_tasks_metrics')
    except NoReverseMatch:
        return None
SCENARIO_TIMEOUT = 90
LONG_JOB_STEPS_BEFORE_CANCEL = 3


# -- processes --------------------------------------------------------------------------

def prepare_database():
    """Migrate and let the worker, the server and this process share the SQLite file."""
    call_command('migrate', verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute('PRAGMA journal_mode=WAL')


def create_demo_user():
    """The ``demo`` user (staff, so it can log in at the admin login page and read the metrics)."""
    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username='demo', defaults={'email': 'demo@example.com'})
    user.is_staff = True
    user.set_password(password)
    user.save()
    return user, password


def clear_broker():
    """Drop messages left in the filesystem broker by an earlier, interrupted run."""
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']
    for path in glob.glob(os.path.join(folder, '*.msg')):
        os.remove(path)


def _child(command, log_name):
    """Start ``command`` in its own process group, its output in a log file under the var folder."""
    log = open(os.path.join(settings.VAR_DIR, log_name), 'ab')
    return subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ), start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def start_worker():
    """A real prefork worker: three children, so the long job does not hold up the others."""
    return _child([sys.executable, '-m', 'celery', '-A', 'example', 'worker', '--pool=prefork',
                   '--concurrency=3', '--loglevel=info', '--include', 'example.demo_tasks,example.studio_export'],
                  'worker.log')


def pick_port():
    """DEMO_PORT when it is free, else any free port."""
    wanted = int(os.environ.get('DEMO_PORT', '8000'))
    with socket.socket() as probe:
        try:
            probe.bind(('127.0.0.1', wanted))
        except OSError:
            probe.bind(('127.0.0.1', 0))
            print(f'Port {wanted} is taken; using {probe.getsockname()[1]} instead.', flush=True)
        return probe.getsockname()[1]


def start_server(port):
    return _child([sys.executable, '-m', 'django', 'runserver', '--noreload', f'127.0.0.1:{port}'], 'server.log')


def wait_for_server(base, server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f'the dev server exited with {server.returncode}; see {settings.VAR_DIR}/server.log')
        try:
            urllib.request.urlopen(base + '/admin/login/', timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.2)
    raise RuntimeError(f'the dev server did not answer within {timeout} s')


def stop(process):
    """Warm shutdown, then kill the process group after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# -- the scenario -----------------------------------------------------------------------

def start_tasks(user):
    """Publish the sample tasks; return {label: (task id, expected final state)}."""
    export = export_olx.delay(user.id, DEMO_COURSE, 'en')
    # A double click on "Export": the export class has a concurrency key (the course), so the
    # second publish sends nothing and returns the export already running (OEP-3).
    again = export_olx.delay(user.id, DEMO_COURSE, 'en')
    print(f'Double click on "Export": 2 publishes -> {len({export.id, again.id})} export '
          f'({UserTaskStatus.objects.filter(user=user, name=export_name(DEMO_COURSE)).count()} row).', flush=True)
    failing = export_olx.delay(user.id, 'not-a-course-key', 'en')
    chain(chain_step.si(user.id, 'first', user_task_name='A chain of two steps'),
          chain_step.si(user.id, 'second')).delay()
    long = long_job.delay(user.id, items=120, delay=0.5)
    return {
        'Studio-style export': (export.id, UserTaskStatus.SUCCEEDED),
        'Export that fails': (failing.id, UserTaskStatus.FAILED),
        'Chain': (_chain_id(user), UserTaskStatus.SUCCEEDED),
        'Long job': (long.id, UserTaskStatus.CANCELED if ONCE else None),
    }


def _chain_id(user):
    """The task id of the chain's container row (written when the chain was published)."""
    return UserTaskStatus.objects.filter(user=user, task_class='celery.chain').values_list('task_id', flat=True).get()


def row(task_id):
    return UserTaskStatus.objects.filter(task_id=task_id).first()


class Browser:
    """A tiny logged-in HTTP client: what a user's browser does, without JavaScript."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path, headers=None):
        request = urllib.request.Request(self.base + path, headers=headers or {})
        with self.opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()

    def post(self, path, fields, headers=None):
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        with self.opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()

    def csrf_from(self, path):
        body = self.get(path)[2].decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)

    def login(self, username, password):
        token = self.csrf_from('/admin/login/')
        self.post('/admin/login/?next=/user_tasks/', {
            'csrfmiddlewaretoken': token, 'username': username, 'password': password, 'next': '/user_tasks/'})
        if not any(cookie.name == 'sessionid' for cookie in self.jar):
            raise RuntimeError('could not log in as the demo user')


def follow(tasks, deadline, forever=False):
    """Print every change of the tasks' rows until all expected ones are final (or forever) or ``deadline`` passes."""
    seen = {}
    while True:
        pending = False
        for label, (task_id, expected) in tasks.items():
            status = row(task_id)
            if status is None:
                pending = True
                continue
            snapshot = (status.state, status.completed_steps, status.total_steps)
            if seen.get(label) != snapshot:
                seen[label] = snapshot
                print(f'  {label:<22} {status.state:<32} {status.completed_steps}/{status.total_steps}', flush=True)
            if expected is not None and status.state not in FINAL:
                pending = True
        if (not pending and not forever) or time.monotonic() > deadline:
            return
        time.sleep(0.25)


def print_urls(base, user, password, tasks):
    print()
    print(f'Log in at   {base}/admin/login/?next=/user_tasks/   user: {user.username}   password: {password}')
    print(f'My tasks    {base}/user_tasks/')
    for label, (task_id, _) in tasks.items():
        status = row(task_id)
        if status is not None:
            print(f'  {label:<22} {base}/user_tasks/{status.uuid}/')
    print(f'REST API    {base}/api/tasks/v0/tasks/')
    if metrics_path():
        print(f'Metrics     {base}{metrics_path()}')
    print(f'Logs        {settings.VAR_DIR}/worker.log, server.log')
    print(flush=True)


def cancel_long_job(browser, task_id):
    """Wait until the long job has made some progress, then press its page's Cancel button (no JS)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = row(task_id)
        if status is not None and status.completed_steps >= LONG_JOB_STEPS_BEFORE_CANCEL:
            break
        time.sleep(0.2)
    page = f'/user_tasks/{status.uuid}/'
    token = browser.csrf_from(page)
    browser.post(f'/user_tasks/{status.uuid}/cancel/', {'csrfmiddlewaretoken': token})
    print(f'  Canceled "{status.name}" through its page, at {status.completed_steps} steps.', flush=True)


def check_over_http(browser, tasks):
    """Look at every task as its user would: page, poll feed, artifacts; then the API and metrics."""
    problems, lines = [], []
    for label, (task_id, expected) in tasks.items():
        status = row(task_id)
        if status is None:
            problems.append(f'{label}: no status row')
            continue
        _, _, body = browser.get(f'/user_tasks/{status.uuid}/poll/', {'Accept': 'application/json'})
        snapshot = json.loads(body)
        line = f'{label:<22} {snapshot["state_text"]:<10} {snapshot["percent"]:>3}%  {status.name}'
        if snapshot['state'] != expected:
            problems.append(f'{label}: ended {snapshot["state"]}, expected {expected}')
        for artifact in snapshot['artifacts']:
            if artifact['kind'] == 'file':
                _, headers, content = browser.get(artifact['href'])
                ok = content[:2] == b'\x1f\x8b' and 'attachment' in headers.get('Content-Disposition', '')
                line += f'\n{"":<24}file {artifact["filename"]} ({len(content)} bytes, gzip: {ok})'
                if not ok:
                    problems.append(f'{label}: the downloaded file is not the tarball')
            elif artifact['is_error']:
                line += f'\n{"":<24}error: {artifact["text"]}'
        if label == 'Studio-style export' and not any(a['kind'] == 'file' for a in snapshot['artifacts']):
            problems.append(f'{label}: no file artifact')
        if label == 'Chain' and len(snapshot['children']) != 2:
            problems.append(f'{label}: {len(snapshot["children"])} children, expected 2')
        lines.append(line)
    exports = UserTaskStatus.objects.filter(name=export_name(DEMO_COURSE)).count()
    lines.append(f'Double click: 2 publishes, {exports} export')
    if exports != 1:
        problems.append(f'double click: {exports} exports of {DEMO_COURSE}, expected 1')
    _, _, body = browser.get('/api/tasks/v0/tasks/', {'Accept': 'application/json'})
    api_rows = json.loads(body)
    lines.append(f'REST API: {len(api_rows)} task rows for the demo user')
    if metrics_path():
        _, _, body = browser.get(metrics_path())
        lines.append(f'Metrics: {sum(1 for x in body.decode().splitlines() if x.startswith("user_tasks_"))} samples')
        if b'user_tasks_' not in body:
            problems.append('metrics: no user_tasks_ series')
    return lines, problems


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cancel_unfinished(user):
    """Cancel what still runs, so the worker's warm shutdown does not wait for it."""
    for status in UserTaskStatus.objects.filter(user=user, parent__isnull=True).exclude(state__in=FINAL):
        status.cancel()


def main():
    # Ctrl-C, and a plain `kill`, stop the demo and its children cleanly (even when started
    # in the background, where SIGINT would otherwise be ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    prepare_database()
    user, password = create_demo_user()
    UserTaskStatus.objects.filter(user=user).delete()  # each run starts with an empty list
    clear_broker()
    port = pick_port()
    base = f'http://127.0.0.1:{port}'
    worker = start_worker()
    server = start_server(port)
    try:
        wait_for_server(base, server)
        tasks = start_tasks(user)
        print(f'Started {len(tasks)} sample tasks for "{user.username}".', flush=True)
        browser = Browser(base)
        browser.login(user.username, password)
        if ONCE:
            cancel_long_job(browser, tasks['Long job'][0])
            follow(tasks, time.monotonic() + SCENARIO_TIMEOUT)
            print_urls(base, user, password, tasks)
            lines, problems = check_over_http(browser, tasks)
            print('Summary')
            for line in lines:
                print(f'  {line}')
            for problem in problems:
                print(f'  PROBLEM: {problem}')
            print('Demo OK' if not problems else 'Demo FAILED', flush=True)
            return 0 if not problems else 1
        follow(tasks, time.monotonic() + 5)
        print_urls(base, user, password, tasks)
        print('The long job runs for about a minute: cancel it from its page. Ctrl-C stops the demo.', flush=True)
        follow(tasks, float('inf'), forever=True)
        return 0
    except KeyboardInterrupt:
        print('\nStopping.', flush=True)
        cancel_unfinished(user)
        return 0
    finally:
        stop(server)
        stop(worker)


if __name__ == '__main__':
    sys.exit(main())

"""``make demo``: run one user task end to end on SQLite with a real Celery worker.

Migrates the demo database, starts ``celery worker`` as a child process, publishes the
sample export task, follows its UserTaskStatus row until it is final and prints it.
Exits 0 when the task succeeded, 1 otherwise.
"""
import glob
import os
import signal
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Running `python example/demo.py` puts example/ first on sys.path, where example/celery.py
# would shadow the real celery package; the project root belongs there instead.
sys.path[0] = REPO_ROOT
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'example.settings')

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from example.tasks import sample_export  # noqa: E402
from user_tasks.models import UserTaskStatus  # noqa: E402

FINAL_STATES = {UserTaskStatus.SUCCEEDED, UserTaskStatus.FAILED, UserTaskStatus.CANCELED}
TIMEOUT = 60


def prepare_database():
    """Migrate, let the worker and this process share the file, return the demo user."""
    call_command('migrate', verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute('PRAGMA journal_mode=WAL')
    user, _ = get_user_model().objects.get_or_create(username='demo', defaults={'email': 'demo@example.com'})
    return user


def clear_broker():
    """Drop messages left in the filesystem broker by an earlier, interrupted run."""
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']
    for path in glob.glob(os.path.join(folder, '*.msg')):
        os.remove(path)


def start_worker():
    """Start a real prefork worker in its own process group."""
    command = [sys.executable, '-m', 'celery', '-A', 'example', 'worker',
               '--pool=prefork', '--concurrency=1', '--loglevel=warning']
    # The worker's banner goes to stdout; its warnings and errors still reach stderr.
    return subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ), start_new_session=True,
                            stdout=subprocess.DEVNULL)


def stop_worker(worker):
    """Warm shutdown, then kill the worker's process group after 10 s."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def wait_until_final(task_id, worker):
    """Poll the status row until it is final, the worker dies or TIMEOUT passes."""
    deadline = time.monotonic() + TIMEOUT
    last = None
    while time.monotonic() < deadline:
        status = UserTaskStatus.objects.filter(task_id=task_id).first()
        if status is not None:
            seen = (status.state, status.completed_steps, status.total_steps)
            if seen != last:
                print(f'  {status.state}: {status.completed_steps}/{status.total_steps} steps')
                last = seen
            if status.state in FINAL_STATES:
                return status
        if worker.poll() is not None:
            print(f'The worker exited with code {worker.returncode}.')
            return status
        time.sleep(0.1)
    print(f'Gave up after {TIMEOUT} s.')
    return UserTaskStatus.objects.filter(task_id=task_id).first()


def report(status):
    """Print the final row and its artifacts."""
    if status is None:
        print('No UserTaskStatus row was found for the task.')
        return
    print(f'Task:     {status.name}')
    print(f'State:    {status.state}')
    print(f'Steps:    {status.completed_steps}/{status.total_steps}')
    print(f'Class:    {status.task_class}')
    for artifact in status.artifacts.all():
        print(f'Artifact: {artifact.name}: {artifact.text or artifact.url or artifact.file}')


def main():
    user = prepare_database()
    clear_broker()
    worker = start_worker()
    try:
        result = sample_export.delay(user.id, 'course-v1:Demo+X+2026')
        print(f'Published sample_export as {result.id}; waiting for the worker...')
        status = wait_until_final(result.id, worker)
    finally:
        stop_worker(worker)
    report(status)
    return 0 if status is not None and status.state == UserTaskStatus.SUCCEEDED else 1


if __name__ == '__main__':
    sys.exit(main())

"""
Drive the Studio-shaped export example (``example/studio_*.py``) through the host's worker.

Run as ``python -m tests.openedx_host.studio_scenario`` in the host with
``OPENEDX_HOST_EXAMPLE=1`` and the worker started with ``USER_TASKS_EXAMPLE_EXPORT_GATE``
set to the same folder as here.  It polls the export page's JSON at each stage, opening
the task's gates one by one, and prints ``REPORT {...}``.  Every wait is bounded.
"""
import io
import json
import os
import sys
import tarfile
import time

import django

COURSE = 'course-v1:OpenedX+Export101+2026'
BAD_COURSE = 'not-a-course'
OTHER_COURSES = ['course-v1:OpenedX+Other1+2026', 'course-v1:OpenedX+Other2+2026', 'course-v1:OpenedX+Other3+2026']
TIMEOUT = float(os.environ.get('OPENEDX_HOST_TASK_TIMEOUT', '40'))


def wait_for_state(name, states, min_steps=0):
    """The newest status named ``name`` once in ``states`` with ``min_steps`` done (None after TIMEOUT)."""
    from user_tasks.models import UserTaskStatus
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = UserTaskStatus.objects.filter(name=name).order_by('-created', '-id').first()
        if status is not None and status.state in states and status.completed_steps >= min_steps:
            return status
        time.sleep(0.05)
    return None


def try_again(client, name):
    """POST the failed export's REST retry route; wait for the new export to end; describe both rows."""
    from user_tasks.models import UserTaskStatus
    old = UserTaskStatus.objects.filter(name=name).order_by('-created', '-id').first()
    response = client.post(f'/api/tasks/v0/tasks/{old.uuid}/retry/')
    old.refresh_from_db()
    new = UserTaskStatus.objects.filter(uuid=old.retried_as).first() if old.retried_as else None
    deadline = time.monotonic() + TIMEOUT
    while new is not None and new.finished is None and time.monotonic() < deadline:
        time.sleep(0.05)
        new.refresh_from_db()
    return {'http': response.status_code, 'location': response.get('Location', ''),
            'old_state': old.state, 'new_uuid': str(new.uuid) if new else None,
            'new_state': new.state if new else None, 'rows': UserTaskStatus.objects.filter(name=name).count()}


def main():
    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from example.studio_export import GATE_ENV, export_name

    # Created after the example's own app, so the host's app is current, as in Studio.
    from tests.openedx_host.celery import app  # noqa: F401

    gate = os.environ[GATE_ENV]
    author = get_user_model().objects.create_user('author', 'author@example.com', 'secret')
    client = Client()
    client.force_login(author)
    stages = []

    def poll(label, course=COURSE):
        response = client.get(f'/export_status/{course}')
        stages.append({'stage': label, 'http': response.status_code, 'json': response.json()})

    def reached(label, states, course=COURSE, min_steps=0):
        status = wait_for_state(export_name(course), states, min_steps)
        if status is None:
            stages.append({'stage': label, 'http': None, 'json': None, 'timeout': True})
            return False
        poll(label, course)
        stages[-1]['state'] = status.state
        return True

    poll('before')
    started = client.post(f'/export/{COURSE}')
    stages.append({'stage': 'start', 'http': started.status_code, 'json': started.json()})
    report = {'stages': stages, 'output': None, 'error_artifact': None}
    ok = reached('exporting', {'Exporting'})
    if ok:
        from user_tasks.models import UserTaskStatus
        # A double click while the export runs: the same export, nothing new (OEP-3).
        again = client.post(f'/export/{COURSE}')
        report['double_click'] = {'http': again.status_code, 'json': again.json(),
                                  'rows': UserTaskStatus.objects.filter(name=export_name(COURSE)).count()}
        # Three active exports per user: two more courses are admitted, a fourth is refused.
        others = [client.post(f'/export/{course}') for course in OTHER_COURSES]
        report['limit'] = {'http': [response.status_code for response in others],
                           'json': [response.json() for response in others],
                           'active': UserTaskStatus.objects.filter(user=author).exclude(
                               state__in=UserTaskStatus.FINAL_STATES).count()}
        open(os.path.join(gate, 'exporting'), 'w').close()
        # Like Studio, the task sets 'Compressing' just before counting the first step done.
        ok = reached('compressing', {'Compressing'}, min_steps=1)
    if ok:
        open(os.path.join(gate, 'compressing'), 'w').close()
        ok = reached('succeeded', {'Succeeded', 'Failed', 'Canceled'})
    if ok and stages[-1]['json'].get('ExportOutput'):
        download = client.get(stages[-1]['json']['ExportOutput'])
        content = b''.join(download.streaming_content) if download.status_code == 200 else b''
        members = []
        if content:
            with tarfile.open(fileobj=io.BytesIO(content), mode='r:gz') as tar:
                members = sorted(tar.getnames())
        report['output'] = {'http': download.status_code, 'members': members,
                            'disposition': download.get('Content-Disposition', '')}

    failed = client.post(f'/export/{BAD_COURSE}')
    stages.append({'stage': 'start-bad', 'http': failed.status_code, 'json': failed.json()})
    if reached('failed', {'Failed', 'Succeeded', 'Canceled'}, BAD_COURSE):
        from user_tasks.models import UserTaskArtifact
        error = UserTaskArtifact.objects.filter(status__name=export_name(BAD_COURSE), name='Error').first()
        report['error_artifact'] = error.text if error else None
        report['retry'] = try_again(client, export_name(BAD_COURSE))

    print('REPORT ' + json.dumps(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())

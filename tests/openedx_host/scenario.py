"""
Run one user task through the host's real worker and report what the host sees, as JSON.

Run as ``python -m tests.openedx_host.scenario`` with the host's environment (see
``__init__.py``), after ``migrate`` and with a worker consuming the same broker folder.
Prints one line ``REPORT {...}``; the tests assert on its fields.  Every wait is bounded.
"""
import json
import os
import sys
import time

import django

TASK_TIMEOUT = float(os.environ.get('OPENEDX_HOST_TASK_TIMEOUT', '40'))


def wait_until_final(task_id):
    """Poll the status row until it is final or ``TASK_TIMEOUT`` passes; return it (or None)."""
    from user_tasks.models import UserTaskStatus
    final = {UserTaskStatus.SUCCEEDED, UserTaskStatus.FAILED, UserTaskStatus.CANCELED}
    deadline = time.monotonic() + TASK_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        status = UserTaskStatus.objects.filter(task_id=task_id).first()
        if status is not None and status.state in final:
            break
        time.sleep(0.1)
    return status


def first_route(path):
    """Index and urlconf of the first top-level URL pattern that resolves ``path``."""
    from django.urls import Resolver404, get_resolver
    for index, pattern in enumerate(get_resolver().url_patterns):
        try:
            match = pattern.resolve(path.lstrip('/'))
        except Resolver404:
            continue
        if match:
            urlconf = getattr(pattern, 'urlconf_name', None)
            return {'index': index, 'urlconf': getattr(urlconf, '__name__', urlconf)}
    return None


def beat_entries(app):
    """The host Celery app's beat schedule: {entry name: task name}."""
    return {name: entry.get('task') for name, entry in (app.conf.beat_schedule or {}).items()}


def main():
    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from tests.openedx_host.celery import app
    from tests.openedx_host.tasks import host_task

    user_model = get_user_model()
    owner = user_model.objects.create_user('owner', 'owner@example.com', 'secret')
    other = user_model.objects.create_user('other', 'other@example.com', 'secret')

    from celery.signals import before_task_publish
    shapes = []

    def record_shape(body=None, headers=None, **kwargs):
        # Protocol 1: the whole message is one dict body and the headers start empty.
        shapes.append(1 if isinstance(body, dict) else 2)
    before_task_publish.connect(record_shape, weak=False)
    result = host_task.delay(owner.id, 'plugin check')
    status = wait_until_final(result.id)
    report = {
        'project_type': settings.PROJECT_TYPE,
        'layout': settings.HOST_LAYOUT,
        'installed_apps': list(settings.INSTALLED_APPS),
        'app_labels': [config.label for config in apps.get_app_configs()],
        'max_age_seconds': settings.USER_TASKS_MAX_AGE.total_seconds(),
        'auth_backends': list(settings.AUTHENTICATION_BACKENDS),
        'beat_schedule': beat_entries(app),
        'settings_schedules': {
            name: sorted(getattr(settings, name, {}) or {}) for name in ('CELERYBEAT_SCHEDULE', 'CELERY_BEAT_SCHEDULE')
        },
        'task_protocol': app.conf.task_protocol,
        'published_protocols': shapes,
        'registered_tasks': sorted(name for name in app.tasks if name.startswith(('user_tasks.', 'tests.'))),
        'task': None,
    }
    if status is None:
        print('REPORT ' + json.dumps(report))
        return 1
    report['task'] = {
        'uuid': str(status.uuid), 'name': status.name, 'state': status.state, 'task_class': status.task_class,
        'completed_steps': status.completed_steps, 'total_steps': status.total_steps,
        'artifacts': [artifact.name for artifact in status.artifacts.all()],
    }
    detail_path = reverse('usertaskstatus-detail', args=[status.uuid])
    report['reverse_detail'] = detail_path
    report['reverse_list'] = reverse('usertaskstatus-list')
    report['first_route'] = first_route(detail_path)
    report['has_perm'] = {
        'owner_view': owner.has_perm('user_tasks.view_usertaskstatus', status),
        'owner_cancel': owner.has_perm('user_tasks.cancel_usertaskstatus', status),
        'other_view': other.has_perm('user_tasks.view_usertaskstatus', status),
    }

    client = Client()
    anonymous = client.get('/api/tasks/v0/tasks/')
    client.force_login(owner)
    listing = client.get('/api/tasks/v0/tasks/')
    detail = client.get(detail_path)
    body = listing.json() if listing.status_code == 200 else None
    rows = body.get('results', body) if isinstance(body, dict) else body
    report['api'] = {
        'anonymous_status': anonymous.status_code,
        'list_status': listing.status_code,
        'list_names': [row.get('name') for row in rows or []],
        'list_states': [row.get('state') for row in rows or []],
        'detail_status': detail.status_code,
        'detail': detail.json() if detail.status_code == 200 else detail.content.decode()[:500],
    }
    detail_page = reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})
    report['pages'] = {
        'detail_url': detail_page,
        'list_url': reverse('user_tasks:task-list'),
        'metrics_url': reverse('user_tasks_metrics'),
        'owner_detail': client.get(detail_page).status_code,
        'owner_list': client.get(reverse('user_tasks:task-list')).status_code,
        'anonymous_metrics': Client().get(reverse('user_tasks_metrics')).status_code,
    }
    client.force_login(other)
    report['pages']['other_detail'] = client.get(detail_page).status_code
    report['api']['other_list_names'] = [row.get('name') for row in (client.get('/api/tasks/v0/tasks/').json() or [])]
    report['api']['other_detail_status'] = client.get(detail_path).status_code
    report['rest_walk'] = rest_walk(owner, status)
    print('REPORT ' + json.dumps(report))
    return 0


def rest_walk(owner, status):
    """
    Every REST route through the host's middleware, as Studio's pages and ``cms_user_tasks`` call them.

    Returns {route: [HTTP status, what the test checks]}; a 500 anywhere is what
    edx-drf-extensions' middleware gave when a view attribute was a property.
    """
    from django.test import Client

    from user_tasks.models import UserTaskStatus

    api = '/api/tasks/v0/'
    client = Client()
    walk = {'anonymous list': [client.get(f'{api}tasks/').status_code, None]}
    client.force_login(owner)
    listing = client.get(f'{api}tasks/')
    walk['list'] = [listing.status_code, len(listing.json()) if listing.status_code == 200 else None]
    detail = client.get(f'{api}tasks/{status.uuid}/')
    walk['detail'] = [detail.status_code, detail.json().get('state') if detail.status_code == 200 else None]
    artifacts = client.get(f'{api}artifacts/')
    walk['artifact list'] = [artifacts.status_code, len(artifacts.json()) if artifacts.status_code == 200 else None]
    artifact = status.artifacts.first()
    one = client.get(f'{api}artifacts/{artifact.uuid}/')
    walk['artifact detail'] = [one.status_code, one.json().get('name') if one.status_code == 200 else None]
    finished = client.post(f'{api}tasks/{status.uuid}/cancel/')
    walk['cancel finished'] = [finished.status_code,
                               finished.json().get('state') if finished.status_code == 200 else None]
    waiting = UserTaskStatus.objects.create(
        user=owner, task_id='rest-walk-waiting', task_class='tests.openedx_host.tasks.host_task',
        name='Waiting', total_steps=1)
    canceled = client.post(f'{api}tasks/{waiting.uuid}/cancel/')
    walk['cancel waiting'] = [canceled.status_code,
                              canceled.json().get('state') if canceled.status_code == 200 else None]
    deleted = client.delete(f'{api}tasks/{waiting.uuid}/')
    walk['delete'] = [deleted.status_code, UserTaskStatus.objects.filter(pk=waiting.pk).exists()]
    walk['detail after delete'] = [client.get(f'{api}tasks/{waiting.uuid}/').status_code, None]
    return walk


if __name__ == '__main__':
    sys.exit(main())

"""
Driver of the upstream bench project, run with upstream's virtualenv (prints one JSON line).

``python -m upstream_project.run setup``: migrate, create the bench user, warm the worker up.
``python -m upstream_project.run round N``: publish N no-op tasks and time from the first
publish to the N-th Succeeded row (as ``bench/throughput.py`` does for ours).
"""
import json
import os
import sys
import time

import django

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'upstream_project.settings')
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from upstream_project.celery_app import app  # noqa: E402, F401
from upstream_project.tasks import noop_task  # noqa: E402
from user_tasks.models import UserTaskStatus  # noqa: E402

BOUND = float(os.environ.get('UPSTREAM_BENCH_BOUND', '600'))


def _user():
    user, _ = get_user_model().objects.get_or_create(username='bench', defaults={'email': 'bench@example.com'})
    return user


def setup():
    call_command('migrate', verbosity=0, interactive=False)
    user = _user()
    for _ in range(4):
        noop_task.apply_async((user.pk,)).get(timeout=120)
    print(json.dumps({'version': __import__('importlib.metadata').metadata.version('django-user-tasks')}))


def round_(tasks):
    user = _user()
    UserTaskStatus.objects.all().delete()
    connection.close()
    start = time.perf_counter()
    for _ in range(tasks):
        noop_task.apply_async((user.pk,))
    published = time.perf_counter()
    while UserTaskStatus.objects.filter(state=UserTaskStatus.SUCCEEDED).count() < tasks:  # one connection throughout
        if time.perf_counter() - start > BOUND:
            raise SystemExit(f'upstream bench: over its {BOUND:.0f} s bound')
        time.sleep(0.02)
    end = time.perf_counter()
    print(json.dumps({'seconds': round(end - start, 3), 'rate': round(tasks / (end - start), 1),
                      'publish_seconds': round(published - start, 3)}))


if __name__ == '__main__':
    if sys.argv[1] == 'setup':
        setup()
    else:
        round_(int(sys.argv[2]))

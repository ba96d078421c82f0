"""
Names and stages longer than their columns, on a database that enforces the length.

SQLite stores a longer value; PostgreSQL and MariaDB refuse it (``DataError``), which
failed the publish of a Studio import named after a long file name.  The name (255) and a
custom stage (128) are cut, ending with an ellipsis (``user_tasks.localized.fit``).
"""
import time
from uuid import uuid4

import pytest
from celery import group
from django.contrib.auth import get_user_model
from django.db import transaction

from tests.tasks import long_named_task
from user_tasks.models import UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LONG = 'a-very-long-file-name-' * 20  # 440 characters
ELLIPSIS = '\u2026'


def _ended(user, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(UserTaskStatus.objects.filter(user=user).order_by('id'))
        if len(rows) == count and all(row.finished is not None for row in rows):
            return rows
        time.sleep(0.1)
    pytest.fail(f'{count} ended rows expected within {timeout} s: '
                f'{list(UserTaskStatus.objects.filter(user=user).values_list("name", "state"))}')
    return None


def _cut(text, length):
    return text[:length - 1] + ELLIPSIS


def test_long_names_and_stages_are_cut_to_their_columns(worker):
    user = get_user_model().objects.create(username=f'long-names-{uuid4().hex[:12]}')
    name = f'Import of course-v1:edX+Demo+2026 from {LONG}'
    outside = long_named_task.delay(user.pk, filename=LONG, stage='Stage ' + 'x' * 200, rename='Renamed ' + LONG)
    with transaction.atomic():  # recorded in the caller's transaction, sent at commit
        inside = long_named_task.delay(user.pk, filename=LONG)
    group(long_named_task.si(user.pk, user_task_name='Group ' + LONG),
          long_named_task.si(user.pk)).apply_async()

    rows = {row.task_id: row for row in _ended(user, 5)}
    assert {row.state for row in rows.values()} == {UserTaskStatus.SUCCEEDED}
    stored = outside.get(timeout=30)
    assert stored == {'state': _cut('Stage ' + 'x' * 200, 128), 'name': _cut('Renamed ' + LONG, 255)}
    assert rows[outside.id].name == _cut('Renamed ' + LONG, 255)
    assert rows[inside.id].name == _cut(name, 255) and len(rows[inside.id].name) == 255
    container = next(row for row in rows.values() if row.is_container)
    assert container.name == _cut('Group ' + LONG, 255)

"""
The PostgreSQL driver of a pass is the one it asked for, and what user_tasks reads from it holds.

``make test-integration`` runs the PostgreSQL scenarios twice: on psycopg2 and on psycopg 3
(``USER_TASKS_TEST_PSYCOPG=3``; ``tests/settings.py`` hides psycopg otherwise).  The two read
a multi-statement string differently (psycopg 3 reports the first result) and name an
error's SQLSTATE differently (``pgcode``, ``sqlstate``); the status connection depends on both.
"""
import os

import pytest
from django.db import OperationalError, connection, connections, transaction

from user_tasks import status_connection
from user_tasks.models import UserTaskStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def postgres():
    if connection.vendor != 'postgresql':
        pytest.skip(f'the PostgreSQL driver checks run in the postgres passes only (this pass is {connection.vendor})')


@pytest.fixture
def status_alias():
    status_connection.activate()
    try:
        yield status_connection.alias_for(UserTaskStatus)
    finally:
        status_connection.deactivate()
        status_connection.close()


def test_the_driver_is_the_one_asked_for(postgres):
    expected = 'psycopg' if os.environ.get('USER_TASKS_TEST_PSYCOPG') == '3' else 'psycopg2'
    assert connection.Database.__name__ == expected
    assert status_connection._one_string(connection) is (expected == 'psycopg2')


def test_a_lock_wait_cut_short_is_recognised(postgres, status_alias, make_status):
    row = make_status()
    with transaction.atomic():
        UserTaskStatus.objects.select_for_update().get(pk=row.pk)  # the body's transaction holds the row
        with pytest.raises(OperationalError) as caught:
            with connections[status_alias].cursor() as cursor:
                cursor.execute('UPDATE user_tasks_usertaskstatus SET modified = now() WHERE id = %s', [row.pk])
    assert status_connection._is_lock_timeout(caught.value), repr(caught.value.__cause__)


def test_a_durable_end_reads_its_own_row_count(postgres, status_alias, make_status, monkeypatch):
    """The end's UPDATE counts the row it moved, not the SET LOCAL in front of it (psycopg 3 reports the first)."""
    monkeypatch.setattr(status_connection, '_commits_asynchronously', lambda connection: True)
    moved, unmoved = make_status(state=UserTaskStatus.IN_PROGRESS), make_status(state=UserTaskStatus.SUCCEEDED)
    assert moved.succeed() is True
    assert unmoved.succeed() is False
    assert UserTaskStatus.objects.get(pk=moved.pk).state == UserTaskStatus.SUCCEEDED

"""Purging old finished tasks: batches, files, per-state ages, running tasks kept."""
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from user_tasks.conf import get_storage
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.retention import purge
from user_tasks.tasks import purge_old_user_tasks

pytestmark = pytest.mark.django_db

S = UserTaskStatus
NOW = timezone.now()
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)


@pytest.fixture
def aged(make_status):
    """Create a row and force its timestamps (``modified`` is otherwise set on save)."""
    def make(state, finished=None, modified=None, started=None, **fields):
        row = make_status(state=state, **fields)
        S.objects.filter(pk=row.pk).update(finished=finished, modified=modified or NOW, started=started)
        return row
    return make


def remaining():
    return set(S.objects.values_list('task_id', flat=True))


@pytest.mark.parametrize('state', [S.SUCCEEDED, S.FAILED, S.CANCELED])
def test_old_final_rows_deleted_recent_kept(aged, state):
    old = aged(state, finished=OLD)
    recent = aged(state, finished=RECENT)
    counts = purge(now=NOW)
    assert remaining() == {recent.task_id}
    assert counts['status'] == 1
    assert old.task_id not in remaining()


def test_age_counted_from_finished_not_modified(aged):
    touched_later = aged(S.SUCCEEDED, finished=OLD, modified=RECENT)
    finished_late = aged(S.SUCCEEDED, finished=RECENT, modified=OLD)
    purge(now=NOW)
    assert remaining() == {finished_late.task_id}
    assert touched_later.task_id not in remaining()


def test_age_falls_back_to_modified_for_upstream_rows(aged):
    old = aged(S.FAILED, finished=None, modified=OLD)
    recent = aged(S.FAILED, finished=None, modified=RECENT)
    purge(now=NOW)
    assert remaining() == {recent.task_id}
    assert old.task_id not in remaining()


@pytest.mark.parametrize('state', [S.PENDING, S.IN_PROGRESS, S.RETRYING, 'Exporting'])
def test_unfinished_rows_never_deleted(aged, state):
    aged(state, modified=NOW - timedelta(days=400), started=NOW - timedelta(days=400))
    assert purge(now=NOW)['status'] == 0
    assert S.objects.count() == 1


def test_canceled_but_still_running_kept(aged):
    running = aged(S.CANCELED, finished=None, modified=OLD, started=OLD)
    stopped = aged(S.CANCELED, finished=OLD, modified=OLD, started=OLD)
    purge(now=NOW)
    assert remaining() == {running.task_id}
    assert stopped.task_id not in remaining()


@override_settings(USER_TASKS_MAX_AGE=timedelta(days=10),
                   USER_TASKS_MAX_AGE_BY_STATE={S.FAILED: timedelta(days=60)})
def test_per_state_max_age(aged):
    failed = aged(S.FAILED, finished=NOW - timedelta(days=40))
    aged(S.SUCCEEDED, finished=NOW - timedelta(days=11))
    aged(S.FAILED, finished=NOW - timedelta(days=61))
    canceled = aged(S.CANCELED, finished=NOW - timedelta(days=9))
    purge(now=NOW)
    assert remaining() == {failed.task_id, canceled.task_id}


def test_containers_deleted_after_their_children(aged):
    container = aged(S.SUCCEEDED, finished=OLD, is_container=True, task_class='celery.group')
    for _ in range(3):
        aged(S.SUCCEEDED, finished=OLD, parent=container)
    assert purge(now=NOW, batch_size=2)['status'] == 4
    assert not S.objects.exists()


def test_container_with_running_child_kept(aged):
    container = aged(S.FAILED, finished=OLD, is_container=True, task_class='celery.group')
    done = aged(S.FAILED, finished=OLD, parent=container)
    running = aged(S.IN_PROGRESS, modified=OLD, started=OLD, parent=container)
    purge(now=NOW)
    assert remaining() == {container.task_id, running.task_id}
    assert done.task_id not in remaining()


def test_artifacts_and_files_deleted(aged, tmp_path):
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        old = aged(S.SUCCEEDED, finished=OLD)
        kept = aged(S.SUCCEEDED, finished=RECENT)
        old_artifact = UserTaskArtifact(status=old)
        old_artifact.file.save('old.txt', ContentFile(b'old'))
        UserTaskArtifact.objects.create(status=old, name='Error', text='x')
        kept_artifact = UserTaskArtifact(status=kept)
        kept_artifact.file.save('kept.txt', ContentFile(b'kept'))
        storage = get_storage()
        assert storage.exists(old_artifact.file.name) and storage.exists(kept_artifact.file.name)
        counts = purge(now=NOW)
        assert counts == {'status': 1, 'artifact': 2, 'file': 1}
        assert not storage.exists(old_artifact.file.name)
        assert storage.exists(kept_artifact.file.name)
        assert list(UserTaskArtifact.objects.all()) == [kept_artifact]


def _deleted_ids_per_statement(queries, table):
    sizes = []
    for query in queries:
        sql = query['sql']
        if sql.startswith('DELETE') and f'"{table}"' in sql.split('WHERE')[0]:
            match = re.search(r'IN \(([^)]*)\)', sql)
            assert match, sql
            sizes.append(len(match.group(1).split(',')))
    return sizes


@pytest.mark.parametrize('batch_size, via_setting', [(10, False), (7, True)])
def test_batch_size_respected(aged, batch_size, via_setting):
    for _ in range(25):
        row = aged(S.SUCCEEDED, finished=OLD)
        UserTaskArtifact.objects.create(status=row, text='out')
    with override_settings(USER_TASKS_PURGE_BATCH_SIZE=batch_size):
        with CaptureQueriesContext(connection) as queries:
            counts = purge(now=NOW, batch_size=None if via_setting else batch_size)
    assert counts['status'] == 25 and counts['artifact'] == 25
    assert not S.objects.exists() and not UserTaskArtifact.objects.exists()
    status_sizes = _deleted_ids_per_statement(queries.captured_queries, 'user_tasks_usertaskstatus')
    artifact_sizes = _deleted_ids_per_statement(queries.captured_queries, 'user_tasks_usertaskartifact')
    assert sum(status_sizes) == 25 and max(status_sizes) == batch_size
    assert sum(artifact_sizes) == 25 and max(artifact_sizes) <= batch_size
    assert len(status_sizes) == -(-25 // batch_size)


@override_settings(USER_TASKS_MAX_AGE=timedelta(days=30))
def test_default_max_age_and_task_and_command(aged):
    aged(S.SUCCEEDED, finished=timezone.now() - timedelta(days=31))
    kept = aged(S.SUCCEEDED, finished=timezone.now() - timedelta(days=29))
    assert purge_old_user_tasks.apply().get()['status'] == 1
    aged(S.FAILED, finished=timezone.now() - timedelta(days=31))
    call_command('purge_old_user_tasks')
    assert remaining() == {kept.task_id}

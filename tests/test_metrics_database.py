"""
The gauges read from the database by the web /metrics view (issue 14, item 2).

They must be true from any web process, without scraping a worker: backlog by state and
task, the oldest Pending row's age, stale In Progress rows, and when the reaper and the
purge last ran (recorded in the database by the jobs themselves).
"""
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.tasks import failing_task
from tests.test_indexes import _plan
from user_tasks.metrics import database
from user_tasks.models import PeriodicJobRun, UserTaskStatus
from user_tasks.recovery import reap
from user_tasks.retention import purge

S = UserTaskStatus
SAMPLE = 'tests.tasks.sample_task'
EXPORT = 'tests.tasks.export'
TOKEN = 'db-gauges-token'
URL = '/user_tasks/metrics'

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    database.clear_cache()
    yield
    database.clear_cache()


def _aged(status, **ages):
    """Move the row's timestamps into the past (``created=timedelta`` means created that long ago)."""
    now = timezone.now()
    S.objects.filter(pk=status.pk).update(**{field: now - age for field, age in ages.items()})
    return status


@pytest.fixture
def rows(make_status, settings):
    settings.USER_TASKS_STALE_AFTER = timedelta(minutes=10)
    oldest = _aged(make_status(state=S.PENDING), created=timedelta(minutes=30))
    make_status(state=S.PENDING)
    make_status(state=S.RETRYING)
    _aged(make_status(state=S.IN_PROGRESS), heartbeat=timedelta(minutes=11), started=timedelta(minutes=20))
    _aged(make_status(state=S.IN_PROGRESS), heartbeat=timedelta(minutes=1))
    make_status(state='Exporting', task_class=EXPORT, started=timezone.now(), heartbeat=timezone.now())
    # Not counted: final rows, a canceled row still stopping, containers.
    make_status(state=S.SUCCEEDED, finished=timezone.now())
    make_status(state=S.CANCELED, started=timezone.now())
    make_status(state=S.PENDING, is_container=True, task_class='celery.chain')
    return oldest


def test_read_counts_unfinished_rows_by_state_and_task(rows):
    values = database.read(known_tasks=[SAMPLE, 'tests.tasks.idle'])
    assert values['tasks'] == {
        (SAMPLE, S.PENDING): 2, (SAMPLE, S.IN_PROGRESS): 2, (SAMPLE, S.RETRYING): 1,
        (EXPORT, S.IN_PROGRESS): 1,  # a custom in-progress text counts as In Progress
        ('tests.tasks.idle', S.PENDING): 0, ('tests.tasks.idle', S.IN_PROGRESS): 0,
        ('tests.tasks.idle', S.RETRYING): 0,
    }
    assert 30 * 60 <= values['oldest_pending_age'] < 31 * 60
    assert values['stale_in_progress'] == 1
    assert values['last_run'] == {'reaper': 0.0, 'purge': 0.0}


def test_nothing_waiting_reads_zero():
    values = database.read()
    assert values == {'tasks': {}, 'oldest_pending_age': 0.0, 'stale_in_progress': 0,
                      'last_run': {'reaper': 0.0, 'purge': 0.0}}


def test_reaper_and_purge_record_their_runs_in_the_database(django_assert_num_queries):
    before = timezone.now()
    reap()
    purge()
    runs = dict(PeriodicJobRun.objects.values_list('job', 'last_run'))
    assert set(runs) == {'reaper', 'purge'} and all(run >= before for run in runs.values())
    later = timezone.now() + timedelta(minutes=5)
    with django_assert_num_queries(1):  # later runs: one UPDATE
        PeriodicJobRun.record(PeriodicJobRun.REAPER, later)
    assert database.read()['last_run']['reaper'] == later.timestamp()


def test_one_round_of_queries_then_the_cache(rows, django_assert_num_queries):
    with django_assert_num_queries(4):
        first = list(database.DatabaseCollector().collect())
    with django_assert_num_queries(0):
        again = list(database.DatabaseCollector().collect())
    assert [family.samples for family in first] == [family.samples for family in again]


def _scrape(settings):
    settings.USER_TASKS_METRICS_TOKEN = TOKEN
    response = Client().get(URL, HTTP_AUTHORIZATION=f'Bearer {TOKEN}')
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def test_the_web_view_exports_the_gauges(rows, settings):
    reap(now=timezone.now() - timedelta(days=1))  # a reaper run yesterday (fails nothing that old)
    samples = _scrape(settings)
    assert samples[('user_tasks_tasks', (('state', 'Pending'), ('task', SAMPLE)))] == 2
    assert samples[('user_tasks_tasks', (('state', 'In Progress'), ('task', EXPORT)))] == 1
    assert samples[('user_tasks_stale_in_progress', ())] == 1
    assert 30 * 60 <= samples[('user_tasks_oldest_pending_age_seconds', ())] < 31 * 60
    reaped = samples[('user_tasks_last_reaper_run_timestamp_seconds', ())]
    assert abs(reaped - (timezone.now() - timedelta(days=1)).timestamp()) < 60
    assert samples[('user_tasks_last_purge_run_timestamp_seconds', ())] == 0
    # The user tasks registered in the web process are there at zero, rows or not.
    assert samples[('user_tasks_tasks', (('state', 'Retrying'), ('task', failing_task.name)))] == 0


def test_the_gauges_can_be_turned_off(rows, settings):
    settings.USER_TASKS_METRICS_DATABASE_GAUGES = False
    samples = _scrape(settings)
    assert not [key for key in samples if key[0] == 'user_tasks_tasks']
    assert ('user_tasks_build_info', (('version', __import__('user_tasks').__version__),)) in samples


def test_a_database_error_is_counted_not_raised(settings, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError('database down')
    monkeypatch.setattr(database, 'read', broken)
    samples = _scrape(settings)
    assert not [key for key in samples if key[0] == 'user_tasks_oldest_pending_age_seconds']
    assert samples[('user_tasks_telemetry_errors_total', (('stage', 'collect'),))] >= 1


@pytest.mark.skipif(connection.vendor != 'sqlite', reason='plans are checked on SQLite (tests/test_indexes.py)')
def test_the_queries_use_the_indexes():
    plans = {name: _plan(query) for name, query in database.queries(timezone.now()).items()}
    # Each reads only the unfinished rows (an index SEARCH on finished IS NULL), never the whole table.
    for name in ('tasks', 'stale'):
        assert 'SEARCH user_tasks_usertaskstatus USING INDEX usertask_active_idx (finished=?' in plans[name], plans
    assert 'USING INDEX usertask_active_idx (finished=? AND state=?)' in plans['oldest'], plans
    assert not [plan for plan in plans.values() if 'SCAN user_tasks_usertaskstatus' in plan], plans

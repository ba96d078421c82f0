"""
Gauges read from the database at scrape time: the backlog, and whether the periodic jobs run.

The event counters of ``prometheus.py`` live in the process that saw the event, so they
are only complete when every process is scraped.  What an operator asks first (how many
tasks wait, how old the oldest is, are tasks stuck, do the reaper and the purge still
run) is a fact of the database, the same from any process: the web ``/metrics`` view adds
this collector to the registry of its scrape, so one web process answers for the site
whatever the number of processes, and without scraping any worker.

Every target reports the same values, so dashboards and alerts aggregate them with
``max`` across targets, never ``sum``.  The queries are bounded and indexed (three
aggregates over the unfinished rows, through ``usertask_active_idx`` and
``usertask_state_finished_idx``, and the one-row-per-job ``PeriodicJobRun`` table) and
their result is kept ``CACHE_SECONDS`` in the process, so a burst of scrapes (several
Prometheus servers, a dashboard refresh) costs one round of queries.

Layer: adapters.  The one module of the package that reads the domain (the models'
tables, at scrape time); nothing in the core imports it.
"""
import threading
import time
from datetime import timedelta

from celery import current_app
from django.db.models import Count, DateTimeField
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from user_tasks import utils
from user_tasks.conf import settings
from user_tasks.metrics.prometheus import telemetry_error
from user_tasks.models import PeriodicJobRun, UserTaskStatus

#: How long one round of queries answers the scrapes of this process.
CACHE_SECONDS = 5.0
#: The ``state`` label values of ``user_tasks_tasks``; custom in-progress texts count as In Progress.
STATES = (UserTaskStatus.PENDING, UserTaskStatus.IN_PROGRESS, UserTaskStatus.RETRYING)
JOBS = {PeriodicJobRun.REAPER: 'user_tasks_last_reaper_run_timestamp_seconds',
        PeriodicJobRun.PURGE: 'user_tasks_last_purge_run_timestamp_seconds'}

_cache = {'at': None, 'values': None}
_lock = threading.Lock()


def _seconds(value):
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _unfinished():
    return UserTaskStatus.objects.filter(finished__isnull=True, is_container=False)


def queries(now):
    """The three queries over the rows, as querysets (``usertask_active_idx`` and ``usertask_state_finished_idx``)."""
    stale_before = now - timedelta(seconds=_seconds(settings.USER_TASKS_STALE_AFTER))
    return {
        'tasks': (_unfinished().exclude(state__in=UserTaskStatus.FINAL_STATES)
                  .values_list('task_class', 'state').annotate(n=Count('id')).order_by()),
        'oldest': (UserTaskStatus.objects.filter(state=UserTaskStatus.PENDING, finished__isnull=True,
                                                 is_container=False)
                   .order_by('created').values_list('created', flat=True)[:1]),
        'stale': (_unfinished().exclude(state__in=UserTaskStatus.FINAL_STATES + UserTaskStatus.WAITING_STATES)
                  .annotate(alive=Coalesce('heartbeat', 'started', 'modified', output_field=DateTimeField()))
                  .filter(alive__lt=stale_before)),
    }


def read(now=None, known_tasks=()):
    """Query the database once: the values of every gauge, as plain data."""
    now = now or timezone.now()
    query = queries(now)
    counts = {(task, state): 0 for task in known_tasks for state in STATES}
    for task, state, number in query['tasks']:
        label = state if state in STATES else UserTaskStatus.IN_PROGRESS
        counts[(task, label)] = counts.get((task, label), 0) + number
    oldest = next(iter(query['oldest']), None)
    runs = dict(PeriodicJobRun.objects.filter(job__in=list(JOBS)).values_list('job', 'last_run'))
    return {
        'tasks': counts,
        'oldest_pending_age': max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        'stale_in_progress': query['stale'].count(),
        'last_run': {job: runs[job].timestamp() if job in runs else 0.0 for job in JOBS},
    }


def _known_tasks():
    """The registered user tasks of this process's Celery app, so their series exist at zero."""
    try:
        return [name for name, task in list(current_app.tasks.items()) if utils.is_user_task(task)]
    except Exception:  # noqa: BLE001  telemetry never breaks a scrape
        telemetry_error('collect')
        return []


def cached_read():
    """``read()``, at most once per ``CACHE_SECONDS`` in this process."""
    with _lock:
        now = time.monotonic()
        if _cache['values'] is None or now - _cache['at'] >= CACHE_SECONDS:
            _cache['values'] = read(known_tasks=_known_tasks())
            _cache['at'] = now
        return _cache['values']


def clear_cache():
    """Forget the cached values (tests, and after a change the next scrape must show)."""
    with _lock:
        _cache['values'] = None


def families(values):
    """The metric families of ``read()``'s values."""
    tasks = GaugeMetricFamily('user_tasks_tasks', 'Unfinished user tasks now, by state and task (from the database).',
                              labels=['state', 'task'])
    for (task, state), number in sorted(values['tasks'].items()):
        tasks.add_metric([state, task], number)
    yield tasks
    yield GaugeMetricFamily('user_tasks_oldest_pending_age_seconds',
                            'Age of the oldest Pending user task, 0 when none waits (from the database).',
                            value=values['oldest_pending_age'])
    yield GaugeMetricFamily('user_tasks_stale_in_progress',
                            'In Progress user tasks whose heartbeat is older than USER_TASKS_STALE_AFTER.',
                            value=values['stale_in_progress'])
    for job, name in JOBS.items():
        yield GaugeMetricFamily(name, f'Unix time of the last {job} run, 0 if it never ran (from the database).',
                                value=values['last_run'][job])


class DatabaseCollector:
    """A custom collector for the registry of one scrape: the database gauges, or nothing on error."""

    def collect(self):
        try:
            values = cached_read()
        except Exception:  # noqa: BLE001  telemetry never breaks a scrape
            telemetry_error('collect')
            return []
        return list(families(values))

    def describe(self):
        """Nothing up front: registering must not query the database."""
        return []

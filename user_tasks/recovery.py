"""
Recovering tasks whose worker went away: heartbeats and the reaper.

A worker's main process touches the rows of the tasks it is running every
``USER_TASKS_HEARTBEAT_INTERVAL`` seconds, with one UPDATE for all of them.  When a
whole worker dies (SIGKILL, OOM, a redeploy), its rows stop being touched; the
reaper (a periodic task and the ``reap_stale_user_tasks`` command) then fails every
running row whose heartbeat is older than ``USER_TASKS_STALE_AFTER``, and every
waiting row older than ``USER_TASKS_PENDING_TIMEOUT`` (its message was lost or
expired).  Each recovery goes through the model's transitions (``recover``), so it is
announced like any other end, and is logged and counted.  Each run is recorded in
``PeriodicJobRun``, so the metrics can tell whether the reaper still runs.  It also ends
containers whose children have all ended but that were left unfinished (see
``UserTaskStatus.end_if_children_ended``).

Layer: operations.  Imports the domain, the hub and the leaves.
"""
import logging
import threading
from datetime import timedelta

from django.db import close_old_connections
from django.db.models import DateTimeField, Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_noop

from user_tasks import checks
from user_tasks.conf import settings
from user_tasks.models import PeriodicJobRun, UserTaskStatus

LOG = logging.getLogger(__name__)

STALE_MESSAGE = gettext_noop('The task stopped responding (the worker running it was lost), so it was stopped.')
PENDING_MESSAGE = gettext_noop('The task never started (its message was lost or expired).')
WORKER_LOST_MESSAGE = gettext_noop('The task stopped unexpectedly (the worker process running it was lost).')
TIME_LIMIT_MESSAGE = gettext_noop('The task took longer than its time limit and was stopped.')
EXPIRED_MESSAGE = gettext_noop('The task expired before it ran.')

_BATCH = 500


def _as_timedelta(value):
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def _last_sign_of_life():
    """The heartbeat, else the start, else the last change (rows written before 0006)."""
    return Coalesce('heartbeat', 'started', 'modified', output_field=DateTimeField())


def _recover(status, message, reason):
    if status.recover(message, reason):
        LOG.warning('Recovered user task %s (%s, %s) as Failed: %s', status.task_id, status.task_class,
                    status.uuid, reason)
        return True
    return False


def reap(now=None):
    """
    Fail stale running rows and long-waiting rows, at most 500 of each kind per call.

    Arguments:
        now (datetime or None): the time to measure ages from (default: now).

    Returns:
        dict: rows recovered by reason: ``{'stale': n, 'pending_timeout': n, 'canceled_stopped': n,
        'containers_ended': n}``.
    """
    checks.validate('USER_TASKS_STALE_AFTER', 'USER_TASKS_PENDING_TIMEOUT')
    now = now or timezone.now()
    counts = {'stale': 0, 'pending_timeout': 0, 'canceled_stopped': 0, 'containers_ended': 0}
    running = (UserTaskStatus.objects.unfinished().filter(is_container=False, finished__isnull=True)
               .exclude(state__in=UserTaskStatus.WAITING_STATES)
               .annotate(alive=_last_sign_of_life())
               .filter(alive__lt=now - _as_timedelta(settings.USER_TASKS_STALE_AFTER)))
    for status in running.select_related('parent')[:_BATCH]:
        counts['stale'] += _recover(status, STALE_MESSAGE, 'stale')
    waiting = (UserTaskStatus.objects.filter(is_container=False, state__in=UserTaskStatus.WAITING_STATES)
               .filter(modified__lt=now - _as_timedelta(settings.USER_TASKS_PENDING_TIMEOUT)))
    for status in waiting.select_related('parent')[:_BATCH]:
        counts['pending_timeout'] += _recover(status, PENDING_MESSAGE, 'pending_timeout')
    # Canceled while running, and the worker died before the task noticed: it has stopped.
    canceled = (UserTaskStatus.objects.filter(state=UserTaskStatus.CANCELED, finished__isnull=True)
                .annotate(alive=_last_sign_of_life())
                .filter(Q(alive__lt=now - _as_timedelta(settings.USER_TASKS_STALE_AFTER))))
    for status in canceled[:_BATCH]:
        counts['canceled_stopped'] += status.mark_stopped()
    # Containers whose children have all ended but that were not ended with the last of them
    # (written before a canceled member ended its container, or by an earlier version that
    # also waited for the children's steps to cover the container's; see end_if_children_ended).
    for container in _ended_containers(now)[:_BATCH]:
        counts['containers_ended'] += container.end_if_children_ended(now)
    if any(counts.values()):
        LOG.warning('Reaped user tasks: %s', counts)
    PeriodicJobRun.record(PeriodicJobRun.REAPER, now)  # read by every web process's /metrics
    return counts


def _ended_containers(now):
    """
    Unfinished containers with children, none of which is still waiting, running or stopping.

    Only those unchanged for ``USER_TASKS_STALE_AFTER``: a live canvas ends itself as its
    children end.  Each of them can end, so none takes the batch run after run.  The scan
    starts from the unfinished rows (index ``usertask_active_idx``); the children are read
    by ``parent_id``.
    """
    children = UserTaskStatus.objects.filter(parent_id=OuterRef('pk'))
    unended = children.exclude(state=UserTaskStatus.SUCCEEDED).exclude(
        state=UserTaskStatus.CANCELED, finished__isnull=False)
    return (UserTaskStatus.objects.filter(finished__isnull=True, is_container=True)
            .exclude(state__in=UserTaskStatus.FINAL_STATES)
            .filter(modified__lt=now - _as_timedelta(settings.USER_TASKS_STALE_AFTER))
            .filter(Exists(children), ~Exists(unended))
            .select_related('parent').order_by('pk'))


def touch(task_ids, now=None):
    """
    Refresh the heartbeat of the running rows of ``task_ids``, in one UPDATE.

    A row canceled while running is final but its work has not stopped (``finished`` is
    empty): it is touched too, or the reaper would announce it stopped while it still runs.
    """
    if not task_ids:
        return 0
    now = now or timezone.now()
    return (UserTaskStatus.objects.filter(task_id__in=list(task_ids), finished__isnull=True)
            .exclude(state__in=UserTaskStatus.WAITING_STATES)
            .update(heartbeat=now))


class Heartbeat(threading.Thread):
    """A daemon thread in a worker's main process that touches the rows of its active tasks."""

    def __init__(self, interval=None):
        super().__init__(name='user-tasks-heartbeat', daemon=True)
        self.interval = interval or settings.USER_TASKS_HEARTBEAT_INTERVAL
        self.stopping = threading.Event()

    def run(self):
        from celery.worker import state  # noqa: PLC0415  worker internals, only in a worker
        while not self.stopping.wait(self.interval):
            try:
                close_old_connections()
                touch({request.id for request in list(state.active_requests)})
            except Exception:  # noqa: BLE001  the thread must outlive a failed beat
                LOG.exception('user_tasks heartbeat failed')

    def stop(self):
        self.stopping.set()


_heartbeat = None


def start_heartbeat(**kwargs):
    """Start the heartbeat thread once per worker main process (``worker_ready``)."""
    global _heartbeat  # noqa: PLW0603  one thread per process
    if _heartbeat is None or not _heartbeat.is_alive():
        _heartbeat = Heartbeat()
        _heartbeat.start()


def stop_heartbeat(**kwargs):
    """Stop the heartbeat thread (``worker_shutdown``)."""
    if _heartbeat is not None:
        _heartbeat.stop()

"""
Prometheus metrics of user tasks, kept up to date from the lifecycle events.

Every metric below is registered on prometheus_client's default registry.  Outcomes
(completed, failures, duration) come from the lifecycle ``stopped`` event, so they
agree with ``user_task_stopped``; the worker-side clock (in progress, duration, queue
wait) comes from Celery's ``task_prerun``/``task_postrun`` in the process that runs the
task.  Labels are bounded: ``task`` is a registered task name, ``queue`` a routing key,
``outcome`` one of three words, ``error_type`` an exception class from a capped set.
A user, task id, status uuid or course is never a label.

Container rows (chains, groups, chords) are not counted: they do not run.

Layer: adapters.  Imports the hub (``lifecycle``) and the leaves only; the core never
imports this package (``user_tasks.metrics.connect()`` registers it on the hub).
"""
import logging
import time

from celery import current_app, current_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from prometheus_client import Counter, Gauge, Histogram

from user_tasks import __version__, lifecycle, utils
from user_tasks.recent import Recent

LOG = logging.getLogger(__name__)

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

#: Distinct ``error_type`` values one process reports before the rest become ``_other``.
MAX_ERROR_TYPES = 20
OTHER_ERROR = '_other'
#: ``error_type`` of a failure seen without its exception (reaper, expiry, another process).
UNKNOWN_ERROR = '_unknown'
UNKNOWN_QUEUE = 'unknown'

OUTCOMES = {'Succeeded': 'succeeded', 'Failed': 'failed', 'Canceled': 'canceled'}
API_OPERATIONS = ('list', 'detail', 'cancel', 'retry', 'delete', 'artifact_list', 'artifact_detail')
CODE_CLASSES = ('2xx', '3xx', '4xx', '5xx')
TELEMETRY_STAGES = ('metrics', 'tracing', 'publish', 'execute', 'api', 'collect', 'merge', 'exporter')
RECOVERY_REASONS = ('stale', 'pending_timeout')
PURGE_KINDS = ('status', 'artifact', 'file')
#: Why a publish was refused (``user_tasks.admission``): over the per-user limit, arguments not keepable.
REJECTION_REASONS = ('limit', 'arguments')

SUBMITTED = Counter('user_tasks_submitted', 'User tasks recorded at publish.', ['task', 'queue'])
STARTED = Counter('user_tasks_started', 'Execution attempts started (retries included).', ['task', 'queue'])
COMPLETED = Counter('user_tasks_completed', 'User tasks that reached a final state, by outcome.',
                    ['task', 'queue', 'outcome'])
RETRIES = Counter('user_tasks_retries', 'Attempts that ended in a retry.', ['task', 'queue'])
FAILURES = Counter('user_tasks_failures', 'User tasks that ended Failed, by exception class.',
                   ['task', 'queue', 'error_type'])
DURATION = Histogram('user_tasks_duration_seconds', 'Run time of the final attempt, by outcome.',
                     ['task', 'queue', 'outcome'], buckets=DURATION_BUCKETS)
QUEUE_WAIT = Histogram('user_tasks_queue_wait_seconds', 'Time from publish to the first start (ETA excluded).',
                       ['task', 'queue'], buckets=QUEUE_WAIT_BUCKETS)
IN_PROGRESS = Gauge('user_tasks_in_progress', 'Attempts executing now.', ['task', 'queue'],
                    multiprocess_mode='livesum')
STEPS = Counter('user_tasks_steps_completed', 'Steps reported done by running tasks.', ['task'])
RECOVERED = Counter('user_tasks_stale_recovered', 'Rows ended by the reaper, by reason.', ['task', 'reason'])
DEDUPLICATED = Counter('user_tasks_deduplicated', 'Publishes answered with an identical active task (nothing sent).',
                       ['task'])
REJECTED = Counter('user_tasks_rejected', 'Publishes refused before anything was written, by reason.',
                   ['task', 'reason'])
PURGED = Counter('user_tasks_purged', 'Rows, artifacts and files deleted by the purge.', ['kind'])
API_REQUESTS = Counter('user_tasks_api_requests', 'Status REST API requests.', ['operation', 'code_class'])
API_DURATION = Histogram('user_tasks_api_request_duration_seconds', 'Status REST API latency.',
                         ['operation', 'code_class'], buckets=API_BUCKETS)
TELEMETRY_ERRORS = Counter('user_tasks_telemetry_errors', 'Failures inside user_tasks telemetry (swallowed).',
                           ['stage'])
BUILD_INFO = Gauge('user_tasks_build_info', 'Always 1; the user_tasks version as a label.', ['version'],
                   multiprocess_mode='livemax')


_queues = Recent(5000)     # task id -> queue, noted at publish and at prerun in this process
_running = Recent(5000)    # task id -> (monotonic start, _Series) while an attempt runs here
_error_types = set()
_series = {}            # (task, queue) -> _Series: the label sets already exported (at zero first)
_routes = {}


def telemetry_error(stage):
    """Count (and log at debug level) an exception swallowed inside telemetry."""
    LOG.debug('user_tasks telemetry failed in %s', stage, exc_info=True)
    try:
        TELEMETRY_ERRORS.labels(stage).inc()
    except Exception:  # noqa: BLE001  counting the failure must not fail in turn
        pass


def initialise():
    """Export the label sets known in advance at zero, so rate() and alerts see them from the start."""
    BUILD_INFO.labels(__version__).set(1)
    for stage in TELEMETRY_STAGES:
        TELEMETRY_ERRORS.labels(stage)
    for kind in PURGE_KINDS:
        PURGED.labels(kind)
    for operation in API_OPERATIONS:
        for code_class in CODE_CLASSES:
            API_REQUESTS.labels(operation, code_class)
            API_DURATION.labels(operation, code_class)


def initialise_tasks(app):
    """Export every registered user task on its routed queue at zero (workers at start, web when scraped)."""
    for name, task in list(app.tasks.items()):
        if utils.is_user_task(task):
            _ensure(name, routed_queue(name, app))


class _Series:
    """The children of one (task, queue) label set, resolved once (``labels()`` is not free)."""

    __slots__ = ('submitted', 'started', 'retries', 'steps', 'queue_wait', 'in_progress', 'duration')

    def __init__(self, task, queue):
        self.submitted = SUBMITTED.labels(task, queue)
        self.started = STARTED.labels(task, queue)
        self.retries = RETRIES.labels(task, queue)
        self.steps = STEPS.labels(task)
        self.queue_wait = QUEUE_WAIT.labels(task, queue)
        self.in_progress = IN_PROGRESS.labels(task, queue)
        self.duration = {outcome: DURATION.labels(task, queue, outcome) for outcome in OUTCOMES.values()}
        for outcome in OUTCOMES.values():
            COMPLETED.labels(task, queue, outcome)
        for reason in RECOVERY_REASONS:
            RECOVERED.labels(task, reason)
        DEDUPLICATED.labels(task)
        for reason in REJECTION_REASONS:
            REJECTED.labels(task, reason)


def _ensure(task, queue):
    """The label set's children, exported at zero the first time it is seen in this process."""
    series = _series.get((task, queue))
    if series is None:
        series = _series[(task, queue)] = _Series(task, queue)
    return series


def error_type(exc):
    """
    The bounded ``error_type`` label of an exception: its class, or ``_other`` past the cap.

    The class is spelled by ``user_tasks.utils.error_type``, as spans' ``error.type`` is
    (``ValueError``, ``billiard.exceptions.WorkerLostError``).
    """
    name = utils.error_type(exc)
    if name in _error_types:
        return name
    if len(_error_types) >= MAX_ERROR_TYPES:
        return OTHER_ERROR
    _error_types.add(name)
    return name


def routed_queue(task_name, app=None):
    """The routing key Celery's router gives ``task_name`` with no explicit options (cached)."""
    queue = _routes.get(task_name)
    if queue is None:
        try:
            if app is None:
                app = current_app
            route = app.amqp.router.route({}, task_name)['queue']
            queue = getattr(route, 'routing_key', None) or getattr(route, 'name', None) or str(route)
        except Exception:  # noqa: BLE001  a router that fails leaves the label unknown
            queue = UNKNOWN_QUEUE
        _routes[task_name] = queue
    return queue


def delivery_queue(request):
    """The routing key a running task's message came with (from its request), or None."""
    info = getattr(request, 'delivery_info', None) or {}
    return info.get('routing_key') or None


def queue_of(status):
    """The queue label for a row: as seen at publish or run time here, else its routed queue."""
    queue = _queues.get(status.task_id)
    if queue:
        return queue
    request = getattr(current_task, 'request', None)
    if request is not None and getattr(request, 'id', None) == status.task_id:
        queue = delivery_queue(request)
        if queue:
            return queue
    return routed_queue(status.task_class)


# -- lifecycle receiver -----------------------------------------------------------------


def on_event(sender, status=None, kind=None, **details):
    """Update the metrics for one lifecycle event; never raises."""
    if kind in _REFUSALS:
        _refused(kind, details)
        return
    if status is None or status.is_container:
        return
    try:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            queue = details.get('queue') or queue_of(status)
            handler(status, _ensure(status.task_class, queue), queue, details)
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('metrics')


def _submitted(status, series, queue, details):
    series.submitted.inc()


def _started(status, series, queue, details):
    series.started.inc()
    if details.get('previous_state', 'Pending') != 'Pending' or status.attempts != 1 or status.created is None:
        return  # queue wait is measured once, from publish to the first start
    since = status.created
    eta = getattr(getattr(current_task, 'request', None), 'eta', None)
    if eta:
        eta = parse_datetime(eta) if isinstance(eta, str) else eta
        if eta is not None and eta.tzinfo is not None:
            since = max(since, eta)
    series.queue_wait.observe(max(0.0, (timezone.now() - since).total_seconds()))


def _progress(status, series, queue, details):
    series.steps.inc(details.get('steps', 1))


def _retried(status, series, queue, details):
    series.retries.inc()


def _stopped(status, series, queue, details):
    outcome = OUTCOMES.get(status.state)
    if outcome is None:
        return
    COMPLETED.labels(status.task_class, queue, outcome).inc()  # once per task: looked up each time
    if outcome == 'failed':
        exception = details.get('exception')
        label = UNKNOWN_ERROR if exception is None else error_type(exception)
        FAILURES.labels(status.task_class, queue, label).inc()
    running = _running.get(status.task_id)
    if running is not None:
        seconds = time.monotonic() - running[0]
    elif status.started is not None and status.finished is not None:
        seconds = (status.finished - status.started).total_seconds()
    else:
        return  # never ran (canceled or expired while waiting)
    series.duration[outcome].observe(max(0.0, seconds))


def _recovered(status, series, queue, details):
    RECOVERED.labels(status.task_class, details.get('reason', 'stale')).inc()


def _refused(kind, details):
    """Count a publish that wrote nothing: answered with an identical active task, or rejected."""
    try:
        task = details.get('task')
        if not task:
            return
        if kind == lifecycle.DEDUPLICATED:
            DEDUPLICATED.labels(task).inc()
        else:
            REJECTED.labels(task, details.get('reason') or 'limit').inc()
    except Exception:  # noqa: BLE001  telemetry never breaks a publish
        telemetry_error('metrics')


_REFUSALS = (lifecycle.DEDUPLICATED, lifecycle.REJECTED)

_HANDLERS = {
    lifecycle.SUBMITTED: _submitted,
    lifecycle.STARTED: _started,
    lifecycle.PROGRESS: _progress,
    lifecycle.RETRIED: _retried,
    lifecycle.STOPPED: _stopped,
    lifecycle.RECOVERED: _recovered,
}


def on_purged(sender, counts=None, **kwargs):
    """Count what a purge deleted."""
    try:
        for kind in PURGE_KINDS:
            if (counts or {}).get(kind):
                PURGED.labels(kind).inc(counts[kind])
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('metrics')


# -- Celery hooks (worker-side clock, publish queue) ------------------------------------


def on_publish(sender=None, headers=None, routing_key=None, body=None, **kwargs):
    """Note the routing key of a message about to be published (``before_task_publish``)."""
    try:
        task_id = (headers or {}).get('id') or (body.get('id') if isinstance(body, dict) else None)
        if task_id and routing_key:
            _queues[task_id] = routing_key
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('publish')


def on_prerun(sender=None, task_id=None, task=None, **kwargs):
    """Start the attempt's clock and count it in progress (``task_prerun``)."""
    try:
        task = task or sender
        if not utils.is_user_task(task):
            return
        queue = delivery_queue(task.request) or routed_queue(task.name)
        _queues[task_id] = queue
        series = _ensure(task.name, queue)
        _running[task_id] = (time.monotonic(), series)
        series.in_progress.inc()
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('metrics')


def on_postrun(sender=None, task_id=None, **kwargs):
    """Stop counting the attempt in progress (``task_postrun``)."""
    try:
        running = _running.pop(task_id, None)
        if running is not None:
            running[1].in_progress.dec()
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('metrics')


# -- REST API ----------------------------------------------------------------------------


def observe_api(operation, status_code, seconds):
    """Count one status API request and its latency."""
    try:
        code_class = f'{int(status_code) // 100}xx'
        API_REQUESTS.labels(operation, code_class).inc()
        API_DURATION.labels(operation, code_class).observe(seconds)
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('api')

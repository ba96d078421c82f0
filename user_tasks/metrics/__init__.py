"""
Observability of user tasks: Prometheus metrics and OpenTelemetry spans.

Both listen to the lifecycle events (``user_tasks.lifecycle.event``) that the model's
transitions send after commit, plus a few Celery signals for what only the worker
knows (its clock, the queue a message came from, the exception a body raised).
``connect()`` is called from ``UserTasksConfig.ready()``; ``disconnect()`` turns all
of it off (the lifecycle then takes its no-listener fast path).  Telemetry never
breaks a task or a request: an exception inside it is logged at debug level and
counted in ``user_tasks_telemetry_errors_total``.
"""
from celery.signals import (
    before_task_publish, task_failure, task_postrun, task_prerun, worker_init, worker_process_init,
    worker_process_shutdown,
)

from user_tasks import lifecycle
from user_tasks.metrics import multiprocess, prometheus, tracing, worker

_CELERY = (
    (before_task_publish, prometheus.on_publish, 'user_tasks.metrics.publish'),
    (before_task_publish, tracing.inject_headers, 'user_tasks.tracing.inject'),
    (task_prerun, prometheus.on_prerun, 'user_tasks.metrics.prerun'),
    (task_postrun, prometheus.on_postrun, 'user_tasks.metrics.postrun'),
    (task_postrun, tracing.end_execute, 'user_tasks.tracing.postrun'),
    (task_failure, prometheus.on_failure, 'user_tasks.metrics.failure'),
    (worker_init, worker.on_worker_init, 'user_tasks.metrics.worker_init'),
    (worker_process_init, worker.on_worker_process_init, 'user_tasks.metrics.process_init'),
    (worker_process_shutdown, worker.on_worker_process_shutdown, 'user_tasks.metrics.process_shutdown'),
)


def on_event(sender, status=None, kind=None, **details):
    """Metrics then spans for one lifecycle event: one receiver, so one dispatch, for both."""
    prometheus.on_event(sender, status=status, kind=kind, **details)
    tracing.on_event(sender, status=status, kind=kind, **details)


_LIFECYCLE = (
    (lifecycle.event, on_event, 'user_tasks.metrics.lifecycle'),
    (lifecycle.purged, prometheus.on_purged, 'user_tasks.metrics.purged'),
)
_state = {'connected': False}


def connect():
    """
    Start recording metrics and spans (idempotent).

    Connect before the state receivers of ``user_tasks.signals``: the publish and
    failure hooks here note the queue and the exception that those receivers'
    transitions then announce.
    """
    tracing.ENABLED = True
    if not _state['connected']:
        # Before the first sample: files of an earlier boot must not be reopened (reused pids).
        multiprocess.claim()
    for signal, receiver, uid in _CELERY:
        signal.connect(receiver, dispatch_uid=uid, weak=False)
    for signal, receiver, uid in _LIFECYCLE:
        signal.connect(receiver, dispatch_uid=uid, weak=False)
    prometheus.initialise()
    _state['connected'] = True


def disconnect():
    """Stop recording metrics and spans."""
    tracing.ENABLED = False
    for signal, receiver, uid in _CELERY:
        signal.disconnect(receiver, dispatch_uid=uid)
    for signal, _, uid in _LIFECYCLE:
        signal.disconnect(dispatch_uid=uid)
    _state['connected'] = False


def connected():
    """Whether metrics and spans are being recorded."""
    return _state['connected']


def executing(task):
    """The context a task body runs in (``UserTaskMixin.__call__``): its span, and its exception noted."""
    return tracing.executing(task, metrics=_state['connected'])

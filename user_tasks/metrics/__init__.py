"""
Observability of user tasks: Prometheus metrics and OpenTelemetry spans.

Both hang off the lifecycle hub (``user_tasks.lifecycle``): metrics and span events
listen to its ``event`` and ``purged`` signals, which the model's transitions send
after commit, and the three spans (submit, execute, cancel) are wrappers registered
with ``lifecycle.register_around``.  A few Celery signals supply what only the worker
knows (its clock, the queue a message came from, the trace context of a publish).

``connect()`` is called from ``UserTasksConfig.ready()`` (the wiring layer);
``disconnect()`` turns all of it off (the lifecycle then takes its no-listener fast
path).  Telemetry never breaks a task or a request: an exception inside it is logged
at debug level and counted in ``user_tasks_telemetry_errors_total``.

Layer: adapters.  This package imports the hub and the leaves, never the Celery layer;
only ``database`` (the gauges a scrape reads from the tables) reads the domain's models.
Nothing in the core imports it (import-linter checks it).
"""
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
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
_AROUND = (
    (lifecycle.SUBMIT, tracing.around_submit),
    (lifecycle.EXECUTE, tracing.around_execute),
    (lifecycle.CANCEL, tracing.around_cancel),
)


def connect():
    """
    Start recording metrics and spans (idempotent; the order against other receivers does not matter).

    Example::

        class MyAppConfig(AppConfig):
            def ready(self):
                user_tasks.metrics.connect()
    """
    # Before the first sample: files of an earlier boot must not be reopened (reused pids).
    # Within a boot this reads one small file and changes nothing.
    multiprocess.claim()
    for signal, receiver, uid in _CELERY:
        signal.connect(receiver, dispatch_uid=uid, weak=False)
    for signal, receiver, uid in _LIFECYCLE:
        signal.connect(receiver, dispatch_uid=uid, weak=False)
    for kind, wrapper in _AROUND:
        lifecycle.register_around(kind, wrapper)
    prometheus.initialise()


def disconnect():
    """Stop recording metrics and spans: no receiver, no wrapper is left on the hub or Celery."""
    for signal, receiver, uid in _CELERY:
        signal.disconnect(receiver, dispatch_uid=uid)
    for signal, _, uid in _LIFECYCLE:
        signal.disconnect(dispatch_uid=uid)
    for kind, wrapper in _AROUND:
        lifecycle.unregister_around(kind, wrapper)

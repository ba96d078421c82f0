"""
The Celery worker side of metrics: one exporter per worker, files of exited children retired.

``worker_init`` runs once in a worker's main process, before the pool forks: it
retires the files left by processes of earlier runs and, when
``USER_TASKS_METRICS_PORT`` is set, starts the HTTP exporter there, which serves the
whole multiprocess directory (every child's samples).  Each pool child exports its
known label sets at zero when it starts and retires its own files when it exits
(``worker_process_shutdown``), so ``--max-tasks-per-child`` cannot grow the directory.

Layer: adapters (inside ``user_tasks.metrics``).  Imports the leaves and its siblings.
"""
import logging
import os

from celery import current_app
from prometheus_client import start_http_server

from user_tasks.conf import settings
from user_tasks.metrics import multiprocess, prometheus

LOG = logging.getLogger(__name__)

_exporter = {}


def parse_address(value):
    """``USER_TASKS_METRICS_PORT`` as (host, port): a port number, or ``'host:port'``."""
    text = str(value)
    host, _, port = text.rpartition(':')
    return (host.strip('[]') or '0.0.0.0'), int(port)


def start_exporter(value=None):
    """Start the HTTP exporter once in this process; return its (host, port), or None when off."""
    value = value if value is not None else settings.USER_TASKS_METRICS_PORT
    if value in (None, ''):
        return None
    if 'address' in _exporter:
        return _exporter['address']
    try:
        host, port = parse_address(value)
        if multiprocess.directory() is None:
            LOG.warning('user_tasks metrics exporter without PROMETHEUS_MULTIPROC_DIR: '
                        'it only sees this process, not the pool children')
        server = start_http_server(port, addr=host, registry=multiprocess.registry())
        _exporter['server'] = server
        _exporter['address'] = (host, port)
        LOG.info('user_tasks metrics exporter listening on %s:%s', host, port)
        return _exporter['address']
    except Exception:  # noqa: BLE001  telemetry never breaks a worker
        prometheus.telemetry_error('exporter')
        LOG.exception('user_tasks metrics exporter did not start')
        return None


def on_worker_init(sender=None, **kwargs):
    """In the worker's main process: retire old files, start the exporter, export known tasks."""
    multiprocess.sweep()
    app = getattr(sender, 'app', None)
    if app is not None:
        try:
            prometheus.initialise_tasks(app)
        except Exception:  # noqa: BLE001  telemetry never breaks a worker
            prometheus.telemetry_error('metrics')
    start_exporter()


def on_worker_process_init(sender=None, **kwargs):
    """In a new pool child: export the known label sets at zero."""
    try:
        prometheus.initialise()
        prometheus.initialise_tasks(current_app)
    except Exception:  # noqa: BLE001  telemetry never breaks a worker
        prometheus.telemetry_error('metrics')


def on_worker_process_shutdown(sender=None, pid=None, **kwargs):
    """In an exiting pool child: fold its counters into the archive and drop its live gauges."""
    if multiprocess.directory():
        multiprocess.mark_process_dead(pid or os.getpid())

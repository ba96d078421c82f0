"""
The Celery worker side of metrics: one exporter per worker, files of exited children retired.

``worker_init`` runs once in a worker's main process, before the pool forks: it
retires the files left by processes of earlier runs and, when
``USER_TASKS_METRICS_PORT`` is set, starts the HTTP exporter there, which serves the
whole multiprocess directory (every child's samples).  It listens on
``USER_TASKS_METRICS_ADDRESS`` (loopback by default) and, when
``USER_TASKS_METRICS_TOKEN`` is set, answers only requests carrying it as a bearer
token, as the web view does.  Each pool child exports its
known label sets at zero when it starts and retires its own files when it exits
(``worker_process_shutdown``), so ``--max-tasks-per-child`` cannot grow the directory.

Layer: adapters (inside ``user_tasks.metrics``).  Imports the leaves and its siblings.
"""
import hmac
import logging
import os
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import current_app
from prometheus_client import make_wsgi_app

from user_tasks.conf import settings
from user_tasks.metrics import multiprocess, prometheus

LOG = logging.getLogger(__name__)

_exporter = {}


def parse_address(value, default_host=None):
    """
    ``USER_TASKS_METRICS_PORT`` as (host, port): a port number (``'host:port'`` is still read).

    A port listens on ``USER_TASKS_METRICS_ADDRESS`` (loopback by default: the
    exporter serves task names and error classes, so it is not opened to the network
    unless asked, e.g. ``0.0.0.0`` inside a container network, with the token set).
    """
    text = str(value)
    host, _, port = text.rpartition(':')
    if not host:
        host = default_host if default_host is not None else settings.USER_TASKS_METRICS_ADDRESS
    return (host.strip('[]') or '127.0.0.1'), int(port)


def bearer_ok(header, token):
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token (constant time)."""
    scheme, _, given = (header or '').partition(' ')
    if not token or scheme.lower() != 'bearer' or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), str(token).encode())


def guarded(app, token):
    """
    The WSGI ``app`` behind the ``USER_TASKS_METRICS_TOKEN`` bearer check, as the web view is.

    No token configured: the app as it is (protect it by the listen address).  Otherwise
    401 without credentials, 403 with wrong ones.
    """
    if not token:
        return app

    def check(environ, start_response):
        header = environ.get('HTTP_AUTHORIZATION')
        if bearer_ok(header, token):
            return app(environ, start_response)
        status = '403 Forbidden' if header else '401 Unauthorized'
        headers = [('Content-Type', 'text/plain')]
        if not header:
            headers.append(('WWW-Authenticate', 'Bearer realm="user_tasks metrics"'))
        start_response(status, headers)
        return [b'Forbidden\n' if header else b'Authentication required\n']
    return check


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  the signature of WSGIRequestHandler
        """Scrapes every few seconds would flood the worker's log."""


def start_exporter(value=None, token=None):
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
        token = token if token is not None else settings.USER_TASKS_METRICS_TOKEN
        if not token and host not in ('127.0.0.1', 'localhost', '::1'):
            LOG.warning('user_tasks metrics exporter listens on %s without USER_TASKS_METRICS_TOKEN: '
                        'anyone who reaches it reads the metrics', host)
        app = guarded(make_wsgi_app(multiprocess.registry()), token)
        server_class = type('Server', (_Server,), {'address_family': _family(host)})
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name='user-tasks-metrics', daemon=True)
        thread.start()
        _exporter['server'] = server
        _exporter['address'] = (host, server.server_port)
        LOG.info('user_tasks metrics exporter listening on %s:%s', host, server.server_port)
        return _exporter['address']
    except Exception:  # noqa: BLE001  telemetry never breaks a worker
        prometheus.telemetry_error('exporter')
        LOG.exception('user_tasks metrics exporter did not start')
        return None


def stop_exporter():
    """Stop the exporter of this process (tests)."""
    server = _exporter.pop('server', None)
    _exporter.pop('address', None)
    if server is not None:
        server.shutdown()
        server.server_close()


def _family(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


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

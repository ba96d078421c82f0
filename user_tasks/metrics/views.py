"""
The ``/metrics`` view: the process's (or the multiprocess directory's) metrics, guarded.

Metrics show task names, volumes and error classes, so they are not public: the view
answers a staff user (session login), or a request carrying
``Authorization: Bearer <USER_TASKS_METRICS_TOKEN>`` (what a Prometheus scrape job
sends, see ``authorization`` in its config).  Anyone else gets 401 (no credentials) or
403 (wrong ones).  The token is compared in constant time.

Besides the processes' own samples, each scrape carries the gauges read from the
database (``user_tasks.metrics.database``: backlog, oldest Pending, stale tasks, last
reaper and purge runs), unless ``USER_TASKS_METRICS_DATABASE_GAUGES`` is False.

Layer: adapters (inside ``user_tasks.metrics``).  Imports the leaves and its siblings.
"""
from celery import current_app
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from user_tasks.conf import settings
from user_tasks.metrics import database, multiprocess, prometheus
from user_tasks.metrics.prometheus import telemetry_error
from user_tasks.metrics.worker import bearer_ok


def _bearer_ok(request):
    return bearer_ok(request.META.get('HTTP_AUTHORIZATION', ''), settings.USER_TASKS_METRICS_TOKEN)


def allowed(request):
    """Whether the request may read the metrics: staff, or the bearer token."""
    user = getattr(request, 'user', None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return _bearer_ok(request)


def _export_known_tasks():
    """
    Export every registered user task on its routed queue at zero from this process.

    A counter born at its first increment hides that increment from ``rate()`` (the
    first sample is the baseline), so the first tasks a web process publishes would
    never show in ``rate(user_tasks_submitted_total[...])`` and the alerts built on it.
    Workers do this at start (``worker_init``); a web process does it at each scrape
    (a set lookup per task once done), so from its first scrape on every publish shows.
    """
    try:
        prometheus.initialise_tasks(current_app)
    except Exception:  # noqa: BLE001  telemetry never breaks a request
        telemetry_error('metrics')


class _Forward:
    """A registry's samples, as a collector of another registry."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()

    def describe(self):
        return []


def scrape_registry():
    """What one scrape reads: the processes' samples, plus the database gauges."""
    base = multiprocess.registry()
    if not settings.USER_TASKS_METRICS_DATABASE_GAUGES:
        return base
    combined = CollectorRegistry(auto_describe=False)
    # The database first: an error there is counted in this very scrape's telemetry errors.
    combined.register(database.DatabaseCollector())
    combined.register(_Forward(base))
    return combined


@csrf_exempt
@never_cache
@require_GET
def metrics_view(request):
    """Serve the metrics in the Prometheus (or OpenMetrics, if asked) text format."""
    if not allowed(request):
        has_credentials = 'HTTP_AUTHORIZATION' in request.META or (
            getattr(request, 'user', None) is not None and request.user.is_authenticated)
        response = HttpResponse('Forbidden\n' if has_credentials else 'Authentication required\n',
                                status=403 if has_credentials else 401, content_type='text/plain')
        if not has_credentials:
            response['WWW-Authenticate'] = 'Bearer realm="user_tasks metrics"'
        return response
    encoder, content_type = choose_encoder(request.META.get('HTTP_ACCEPT', ''))
    _export_known_tasks()
    try:
        body = encoder(scrape_registry())
    except Exception:
        telemetry_error('collect')
        raise
    return HttpResponse(body, content_type=content_type)

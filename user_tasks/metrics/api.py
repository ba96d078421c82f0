"""
Metrics of the status REST API: requests and latency by operation and status class.

``instrument_urls`` wraps the views of the router's URL patterns, so every way of
reaching them (Studio's mount, the plugin's, a host's own) is counted the same, and
the views themselves stay free of telemetry.  ``operation`` is a small fixed set.

Layer: adapters (inside ``user_tasks.metrics``).  Imports ``metrics.prometheus``.
"""
import functools
import time

from django.urls import URLPattern

from user_tasks.metrics.prometheus import observe_api

#: URL name -> operation, with the HTTP method where it matters.
_OPERATIONS = {
    'usertaskstatus-list': 'list',
    'usertaskstatus-detail': 'detail',
    'usertaskstatus-cancel': 'cancel',
    'usertaskstatus-retry': 'retry',
    'usertaskartifact-list': 'artifact_list',
    'usertaskartifact-detail': 'artifact_detail',
}


def _operation(name, method):
    operation = _OPERATIONS.get(name)
    if operation == 'detail' and method == 'DELETE':
        return 'delete'
    return operation


def _instrumented(view, name):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        started = time.perf_counter()
        code = 500
        try:
            response = view(request, *args, **kwargs)
            code = response.status_code
            return response
        finally:
            operation = _operation(name, request.method)
            if operation is not None:
                observe_api(operation, code, time.perf_counter() - started)
    return wrapper


def instrument_urls(patterns):
    """The URL patterns with their views counted in ``user_tasks_api_requests_total``."""
    result = []
    for original in patterns:
        pattern = original
        if isinstance(original, URLPattern) and original.name in _OPERATIONS:
            pattern = URLPattern(original.pattern, _instrumented(original.callback, original.name),
                                 original.default_args, original.name)
        result.append(pattern)
    return result

"""
Spans of a test's Celery worker, written to a file the test reads back.

Loaded by the worker that ``tests/integration/test_observability.py`` starts
(``CELERY_IMPORTS`` in ``tests/settings.py`` when ``USER_TASKS_TEST_SPAN_FILE`` is set).
In every pool child (``worker_process_init``, after the fork, as the OpenTelemetry docs
ask of prefork servers) it installs the SDK's ``TracerProvider`` with a
``SimpleSpanProcessor``: each span is written when it ends, as one JSON line appended
with a single ``O_APPEND`` write, so a child recycled by ``--max-tasks-per-child`` loses
nothing and lines of concurrent children never interleave.
"""
import json
import os

from celery.signals import worker_process_init

ENV = 'USER_TASKS_TEST_SPAN_FILE'


def _hex(value, width):
    return format(value, f'0{width}x')


def span_record(span):
    """One finished SDK span as a JSON-ready dict."""
    parent = span.parent
    return {
        'name': span.name,
        'kind': span.kind.name,
        'trace_id': _hex(span.context.trace_id, 32),
        'span_id': _hex(span.context.span_id, 16),
        'parent_span_id': _hex(parent.span_id, 16) if parent is not None else None,
        'status': span.status.status_code.name,
        'status_description': span.status.description,
        'attributes': dict(span.attributes or {}),
        'events': [{'name': event.name, 'attributes': dict(event.attributes or {})} for event in span.events],
        'links': [{'trace_id': _hex(link.context.trace_id, 32), 'span_id': _hex(link.context.span_id, 16)}
                  for link in span.links],
        'pid': os.getpid(),
    }


def _exporter(path):
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesSpanExporter(SpanExporter):
        """Appends every exported span to ``path`` as a JSON line."""

        def export(self, spans):
            data = ''.join(json.dumps(span_record(span), default=str) + '\n' for span in spans).encode()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

    return JsonLinesSpanExporter()


def setup_tracing(**kwargs):
    """Install the SDK in this (pool child) process, exporting to the file named by ``USER_TASKS_TEST_SPAN_FILE``."""
    path = os.environ.get(ENV)
    if not path:
        return

    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({'service.name': 'user-tasks-test-worker'}))
    provider.add_span_processor(SimpleSpanProcessor(_exporter(path)))
    trace.set_tracer_provider(provider)


def read(path):
    """The spans written to ``path`` so far."""
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as stream:
        return [json.loads(line) for line in stream if line.strip()]


if os.environ.get(ENV):
    worker_process_init.connect(setup_tracing, dispatch_uid='tests.span_file', weak=False)

"""
Our spans beside opentelemetry-instrumentation-celery, under protocol 1 and 2, in either order.

Under protocol 1 (edx-platform's) the message headers start empty; the instrumentation reads
the task id from the headers once they are not empty.  Whichever receiver is connected first
to ``before_task_publish``, every publish must get a publish span that ends, nothing may stay
in the instrumentation's per-task span bookkeeping, and every exported span's parent (and
link) must be exported too.  The in-process worker runs in this process, so the SDK's
in-memory exporter sees the worker's spans as well.
"""
import pytest
from celery.signals import before_task_publish
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.celery import utils as instrumentation_utils
from opentelemetry.sdk.trace import SpanProcessor

from tests.conftest import wait_until
from tests.tasks import sample_task
from tests.test_tracing import _provider, named, spans  # noqa: F401
from user_tasks.metrics import tracing
from user_tasks.models import UserTaskStatus

PUBLISHES = 3
OUR_INJECT = 'user_tasks.tracing.inject'


class OpenSpans(SpanProcessor):
    """The spans started and not ended yet, by span id."""

    def __init__(self):
        self.open = {}

    def on_start(self, span, parent_context=None):
        self.open[span.context.span_id] = span.name

    def on_end(self, span):
        self.open.pop(span.context.span_id, None)


_OPEN = OpenSpans()


@pytest.fixture
def open_spans(_provider):  # noqa: F811
    if _OPEN not in _provider._active_span_processor._span_processors:
        _provider.add_span_processor(_OPEN)
    _OPEN.open.clear()
    return _OPEN


@pytest.fixture(params=['ours-first', 'instrumentation-first'])
def instrumented(request, _provider):  # noqa: F811
    """Celery's instrumentation connected after, or before, our publish receiver."""
    instrumentor = CeleryInstrumentor()
    if hasattr(sample_task, instrumentation_utils.CTX_KEY):  # each combination starts from clean bookkeeping
        delattr(sample_task, instrumentation_utils.CTX_KEY)
    if request.param == 'instrumentation-first':
        before_task_publish.disconnect(dispatch_uid=OUR_INJECT)
        instrumentor.instrument(tracer_provider=_provider)
        before_task_publish.connect(tracing.inject_headers, dispatch_uid=OUR_INJECT, weak=False)
    else:
        instrumentor.instrument(tracer_provider=_provider)
    receivers = [receiver for receiver in before_task_publish._live_receivers(sample_task.name)]
    ours = receivers.index(tracing.inject_headers)
    theirs = next(i for i, receiver in enumerate(receivers)
                  if getattr(receiver, '__name__', '') == '_trace_before_publish')
    assert (ours < theirs) == (request.param == 'ours-first')
    yield request.param
    instrumentor.uninstrument()


def test_no_span_left_open_and_parents_exported(protocol, instrumented, worker, user, spans, open_spans):  # noqa: F811
    results = []
    with trace.get_tracer('tests').start_as_current_span('request'):
        for index in range(PUBLISHES):
            results.append(sample_task.apply_async((user.pk,), {'label': f'p{index}'}))
    ids = [result.id for result in results]
    assert wait_until(lambda: len(named(spans, 'run/tests.tasks.sample_task')) == PUBLISHES
                      and UserTaskStatus.objects.filter(task_id__in=ids, finished__isnull=False).count() == PUBLISHES)
    assert wait_until(lambda: not open_spans.open), open_spans.open

    # Every publish got the instrumentation's publish span, ended and exported.
    publishes = named(spans, 'apply_async/tests.tasks.sample_task')
    assert sorted(dict(span.attributes)['messaging.message.id'] for span in publishes) == sorted(ids)
    # Nothing left in the instrumentation's per-task bookkeeping (one entry leaked per publish before).
    assert not getattr(sample_task, instrumentation_utils.CTX_KEY, None)
    # Every parent and every link of an exported span was exported as well.
    exported = {span.context.span_id for span in spans.get_finished_spans()}
    for span in spans.get_finished_spans():
        if span.parent is not None:
            assert span.parent.span_id in exported, f'{span.name}: parent never exported'
        for link in span.links:
            assert link.context.span_id in exported, f'{span.name}: link target never exported'
    executes = named(spans, 'user_tasks.execute')
    assert sorted(dict(span.attributes)['messaging.message.id'] for span in executes) == sorted(ids)
    publish_ids = {span.context.span_id for span in publishes}
    for execute in executes:
        # The worker span reaches its publisher: as its parent's parent, or through a link.
        assert {link.context.span_id for link in execute.links} & publish_ids

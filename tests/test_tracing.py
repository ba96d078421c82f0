"""OpenTelemetry spans of user tasks, checked with the SDK's in-memory exporter (C3)."""
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests import unit_tasks
from tests.conftest import wait_until
from tests.tasks import failing_task, retrying_task, sample_task
from user_tasks import lifecycle, metrics
from user_tasks.conf import settings as ut_settings
from user_tasks.metrics.prometheus import error_type
from user_tasks.models import UserTaskStatus

_EXPORTER = InMemorySpanExporter()
_PROCESSOR = SimpleSpanProcessor(_EXPORTER)
MESSAGING = ('messaging.system', 'messaging.destination.name', 'messaging.operation.type', 'messaging.operation.name')


@pytest.fixture(scope='session')
def _provider():
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    # Once per process: other modules import this fixture, and a second processor would export twice.
    if _PROCESSOR not in provider._active_span_processor._span_processors:
        provider.add_span_processor(_PROCESSOR)
    return provider


@pytest.fixture
def spans(_provider):
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def named(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


def run(task, user, spans, count=1, **kwargs):
    """Publish ``task`` inside a 'request' span; wait for its execute spans; return (request, submit, executes)."""
    with trace.get_tracer('tests').start_as_current_span('request') as request:
        result = task.apply_async((user.pk,), kwargs)
    assert wait_until(lambda: len(named(spans, 'user_tasks.execute')) >= count
                      and UserTaskStatus.objects.filter(task_id=result.id, finished__isnull=False).exists())
    (submit,) = named(spans, 'user_tasks.submit')
    return request, submit, named(spans, 'user_tasks.execute'), result


def test_execute_joins_the_publishing_trace(protocol, worker, user, spans):
    request, submit, (execute,), result = run(sample_task, user, spans, steps=2)
    status = UserTaskStatus.objects.get(task_id=result.id)
    assert submit.parent.span_id == request.get_span_context().span_id
    assert execute.context.trace_id == request.get_span_context().trace_id
    assert execute.parent.span_id == request.get_span_context().span_id
    assert execute.kind == trace.SpanKind.CONSUMER
    assert submit.kind == trace.SpanKind.PRODUCER
    attributes = dict(execute.attributes)
    queue = sample_task.app.amqp.router.route({}, sample_task.name)['queue'].name
    assert {key: attributes[key] for key in MESSAGING} == {
        'messaging.system': 'celery', 'messaging.destination.name': queue,
        'messaging.operation.type': 'process', 'messaging.operation.name': 'process'}
    submitted = dict(submit.attributes)
    assert {key: submitted[key] for key in MESSAGING} == {
        'messaging.system': 'celery', 'messaging.destination.name': queue,
        'messaging.operation.type': 'send', 'messaging.operation.name': 'send'}
    assert submitted['messaging.message.id'] == result.id
    assert attributes['user_tasks.task.name'] == 'tests.tasks.sample_task'
    assert attributes['user_tasks.status.id'] == str(status.uuid)
    assert attributes['messaging.message.id'] == result.id
    assert attributes['user_tasks.attempt'] == 1
    assert attributes['user_tasks.state'] == 'Succeeded'
    assert attributes['user_tasks.completed_steps'] == 2
    assert execute.status.status_code == StatusCode.UNSET
    assert 'user_tasks.progress' in [event.name for event in execute.events]
    assert dict(submit.attributes)['user_tasks.status.id'] == str(status.uuid)


def test_error_only_on_final_failure(worker, user, spans):
    _, _, (execute,), _ = run(failing_task, user, spans, message='disk full')
    assert execute.status.status_code == StatusCode.ERROR
    # The class, never the message (it can hold user data), spelt as the metrics' error_type label.
    assert execute.status.description == 'ValueError'
    assert dict(execute.attributes)['error.type'] == 'ValueError' == error_type(ValueError())
    (event,) = execute.events
    assert event.name == 'exception'
    assert dict(event.attributes)['exception.message'] == 'ValueError'
    assert 'disk full' not in repr(dict(event.attributes))


def test_error_message_only_when_allowed(worker, user, spans):
    ut_settings.USER_TASKS_TRACE_EXCEPTION_MESSAGES = True
    try:
        _, _, (execute,), _ = run(failing_task, user, spans, message='disk full')
    finally:
        del ut_settings.USER_TASKS_TRACE_EXCEPTION_MESSAGES
    assert execute.status.description == 'ValueError: disk full'
    assert dict(execute.events[0].attributes)['exception.message'] == 'disk full'


@pytest.mark.django_db
def test_submit_failure_names_the_class_only(make_status, spans):
    status = make_status()
    address = '@'.join(('alice', 'example.com'))  # not in the source line the stack trace quotes

    def record(status):
        raise KeyError(address)
    with pytest.raises(KeyError):
        lifecycle.around(lifecycle.SUBMIT, status, record, status)
    (submit,) = named(spans, 'user_tasks.submit')
    assert submit.status.status_code == StatusCode.ERROR
    assert submit.status.description == 'KeyError'
    assert 'alice@example.com' not in repr(dict(submit.events[0].attributes))


def test_retried_attempt_is_not_an_error(worker, user, spans):
    _, _, executes, _ = run(retrying_task, user, spans, count=2, succeed_on=2)
    first, second = sorted(executes, key=lambda span: span.start_time)
    assert first.status.status_code == StatusCode.UNSET
    assert [event.name for event in first.events] == ['user_tasks.retry']
    assert dict(first.attributes)['user_tasks.state'] == 'Retrying'
    second_attributes = dict(second.attributes)
    assert (second_attributes['user_tasks.attempt'], second_attributes['user_tasks.state']) == (2, 'Succeeded')
    assert second.status.status_code == StatusCode.UNSET
    assert first.context.trace_id == second.context.trace_id


def test_canceled_while_running(worker, user, spans):
    _, _, (execute,), _ = run(unit_tasks.canceling_task, user, spans)
    assert execute.status.status_code == StatusCode.UNSET
    assert dict(execute.attributes)['user_tasks.state'] == 'Canceled'
    assert 'user_tasks.canceled' in [event.name for event in execute.events]
    (cancel,) = named(spans, 'user_tasks.cancel')
    assert cancel.parent.span_id == execute.context.span_id
    assert dict(cancel.attributes)['user_tasks.status.previous_state'] == 'In Progress'


@pytest.mark.django_db
def test_cancel_span(make_status, spans, monkeypatch):
    from user_tasks import signals
    monkeypatch.setattr(signals.celery_app.control, 'revoke', lambda *a, **k: None)
    status = make_status()
    status.cancel()
    (cancel,) = named(spans, 'user_tasks.cancel')
    attributes = dict(cancel.attributes)
    assert (attributes['user_tasks.status.previous_state'], attributes['user_tasks.state']) == ('Pending', 'Canceled')
    assert attributes['user_tasks.cancel.changed'] is True


def test_disabled_tracing_creates_no_span(worker, user, spans):
    metrics.disconnect()  # what turns telemetry off: no wrapper or receiver is left on the hub
    try:
        result = sample_task.apply_async((user.pk,))
        assert result.get(timeout=10, interval=0.01) == 'task'
        assert not spans.get_finished_spans()
    finally:
        metrics.connect()


def test_inside_celery_instrumentation_run_span(worker, user, spans, _provider):
    instrumentation = pytest.importorskip('opentelemetry.instrumentation.celery')
    instrumentor = instrumentation.CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=_provider)
    try:
        with trace.get_tracer('tests').start_as_current_span('request'):
            result = sample_task.apply_async((user.pk,))
        assert wait_until(lambda: named(spans, 'run/tests.tasks.sample_task') and named(spans, 'user_tasks.execute'))
    finally:
        instrumentor.uninstrument()
    (run_span,) = named(spans, 'run/tests.tasks.sample_task')
    (publish,) = named(spans, 'apply_async/tests.tasks.sample_task')
    (execute,) = named(spans, 'user_tasks.execute')
    assert execute.parent.span_id == run_span.context.span_id
    assert [link.context.span_id for link in execute.links] == [publish.context.span_id]
    assert dict(execute.attributes)['messaging.message.id'] == result.id

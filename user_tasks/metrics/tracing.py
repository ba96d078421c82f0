"""
OpenTelemetry spans of user tasks, through ``opentelemetry-api`` only.

- ``user_tasks.submit`` (PRODUCER): around writing the rows of a publish (``lifecycle.SUBMIT``).
- ``user_tasks.execute`` (CONSUMER): around the task body (``lifecycle.EXECUTE``).  Its parent
  is the context the publisher put in the message headers (``traceparent``), or, when
  Celery's own instrumentation already runs a span, that span, with a link to the
  publisher.  It stays open until ``task_postrun`` so the lifecycle events of the
  attempt (progress, retry, the final state) land on it.
- ``user_tasks.cancel``: around ``UserTaskStatus.cancel()`` (``lifecycle.CANCEL``).

Both carry the OpenTelemetry messaging attributes (``messaging.system`` ``celery``,
``messaging.destination.name`` the queue, ``messaging.operation.type`` ``send`` or
``process``, ``messaging.message.id`` the Celery task id).  Status is ERROR only when the
task finally fails; a retried attempt and a canceled task stay UNSET.  The exception of a
failure or a retry comes with its lifecycle event.  ``error.type`` is spelt by
``utils.error_type``, as the metrics' ``error_type`` label is; the status description
and the exception event carry the exception's class, not its message (messages can hold
user data), unless ``USER_TASKS_TRACE_EXCEPTION_MESSAGES``.
The host configures the SDK and exporters; without one, all of this is the API's
no-op.  Key attributes also go to edx-django-utils' custom attributes.

Layer: adapters.  Imports the hub and the leaves; ``user_tasks.metrics.connect()``
registers the three wrappers with ``lifecycle.register_around``.
"""
import time
import traceback
from contextlib import contextmanager

from celery import current_app
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from user_tasks import __version__, lifecycle, utils
from user_tasks.conf import settings
from user_tasks.metrics.prometheus import delivery_queue, queue_of, routed_queue, telemetry_error
from user_tasks.recent import Recent

TRACER_NAME = 'user_tasks'
#: ``messaging.system``: the semantic conventions have no Celery value; Celery's own name is the honest one.
MESSAGING_SYSTEM = 'celery'
#: At most one progress event per span in this many seconds (the last step is always recorded).
PROGRESS_INTERVAL = 5.0
HEADERS = ('traceparent', 'tracestate', 'baggage')

_open = Recent(1000)  # task id -> _Execution, between __call__ and task_postrun
_tracer_cache = [None, None]


_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def tracer():
    """
    The ``user_tasks`` tracer of the current provider, or None when no SDK is installed.

    Looked up per provider, not cached for ever (tests and hosts may install one later).
    Without a provider every span would be the API's non-recording no-op: returning None
    lets the callers skip building attributes and extracting/injecting context at all.
    """
    provider = trace.get_tracer_provider()
    if _tracer_cache[0] is not provider:
        _tracer_cache[1] = (None if isinstance(provider, _NO_PROVIDER)
                            else trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider))
        _tracer_cache[0] = provider
    return _tracer_cache[1]


def _tracer_or_none():
    try:
        return tracer()
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')
        return None


_set_custom_attribute = []


def _custom_attributes(attributes):
    if not _set_custom_attribute:
        try:
            from edx_django_utils.monitoring import set_custom_attribute  # noqa: PLC0415  optional, loaded once
        except ImportError:  # pragma: no cover
            set_custom_attribute = None
        _set_custom_attribute.append(set_custom_attribute)
    set_custom_attribute = _set_custom_attribute[0]
    if set_custom_attribute is None:  # pragma: no cover
        return
    for key, value in attributes.items():
        # .. custom_attribute_name: user_tasks.task.name, user_tasks.status.id, user_tasks.attempt
        # .. custom_attribute_description: The user task running (or published) in this transaction.
        set_custom_attribute(key, value)


def status_attributes(status):
    """The span attributes describing a status row."""
    attributes = {
        'user_tasks.task.name': status.task_class,
        'user_tasks.status.id': str(status.uuid),
        'user_tasks.attempt': status.attempts or 1,
        'user_tasks.total_steps': status.total_steps or 0,
        'messaging.message.id': status.task_id,
    }
    if status.parent_id is not None and type(status).parent.is_cached(status):  # no query for it
        attributes['user_tasks.parent.id'] = str(status.parent.uuid)
    return attributes


def _messaging(operation, queue):
    """The messaging attributes of the semantic conventions for a ``send`` or ``process`` span."""
    return {'messaging.system': MESSAGING_SYSTEM, 'messaging.destination.name': queue or 'unknown',
            'messaging.operation.type': operation, 'messaging.operation.name': operation}


def _mark_failed(span, exc):
    """
    ERROR status and the exception event, naming the exception's class.

    The message is left out unless ``USER_TASKS_TRACE_EXCEPTION_MESSAGES``: a task's
    exception text can quote its input (a file name, a course, an e-mail address).
    """
    if exc is None:
        span.set_status(Status(StatusCode.ERROR, 'Failed'))
        return
    name = utils.error_type(exc)
    if settings.USER_TASKS_TRACE_EXCEPTION_MESSAGES:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f'{name}: {exc}'))
    else:
        stack = traceback.TracebackException.from_exception(exc).stack.format()
        span.record_exception(exc, attributes={
            'exception.message': name,
            'exception.stacktrace': ''.join(['Traceback (most recent call last):\n', *stack, name, '\n']),
        })
        span.set_status(Status(StatusCode.ERROR, name))
    span.set_attribute('error.type', name)


@contextmanager
def _in_span(span):
    """``span`` as the current span until the block ends; an exception marks it failed (class only)."""
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield
        except BaseException as exc:
            try:
                _mark_failed(span, exc)
            except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
                telemetry_error('tracing')
            raise


# -- submit -------------------------------------------------------------------------------


def around_submit(status, proceed):
    """Wrap the writing of a publish's rows (``lifecycle.SUBMIT``) in a ``user_tasks.submit`` span."""
    current = _tracer_or_none()
    if current is None:
        return proceed()
    try:
        attributes = {'user_tasks.task.name': status.task_class, 'messaging.message.id': status.task_id,
                      **_messaging('send', queue_of(status))}
        span = current.start_span('user_tasks.submit', kind=SpanKind.PRODUCER, attributes=attributes)
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')
        return proceed()
    with _in_span(span):
        result = proceed()
        try:
            described = status_attributes(status)
            span.set_attributes(described)
            _custom_attributes({'user_tasks.task.name': status.task_class,
                                'user_tasks.status.id': described['user_tasks.status.id']})
        except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
            telemetry_error('tracing')
        return result


def inject_headers(sender=None, headers=None, body=None, **kwargs):
    """
    Put the publishing context in a user task's message headers (``before_task_publish``).

    Under protocol 1 (edx-platform's) the headers start empty and the task id is in the
    body.  opentelemetry-instrumentation-celery reads the id from the headers as soon as
    they are not empty, in its ``before_task_publish`` and ``after_task_publish``
    receivers: headers holding only ``traceparent`` would give it no id, so its publish
    span would never start (connected after us) or never end (connected before us, one
    leaked span per publish).  So the id goes into the headers with the context.  The
    worker reads protocol-1 headers as ``request.headers``; the body is never touched.
    """
    if headers is None or 'traceparent' in headers:
        return  # Celery's instrumentation may have put its publish span there already
    try:
        if tracer() is None:
            return  # no SDK: no span context worth carrying
        if not utils.is_user_task(current_app.tasks.get(sender)):
            return
        protocol_1 = not headers and isinstance(body, dict)
        propagate.inject(headers)
        if protocol_1 and headers and body.get('id'):
            headers.setdefault('id', body['id'])
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('publish')


# -- execute ------------------------------------------------------------------------------


class _Execution:
    """The open ``user_tasks.execute`` span of one attempt, and what it has seen."""

    __slots__ = ('span', 'last_progress', 'attributes')

    def __init__(self, span, attributes):
        self.span = span
        self.attributes = attributes  # what the span already carries: set again only what changed
        # The first progress event comes PROGRESS_INTERVAL after the start (the last step always).
        self.last_progress = time.monotonic()

    def update(self, attributes):
        """Set the attributes whose values the span does not carry yet (each set is validated by the SDK)."""
        known = self.attributes
        changed = {key: value for key, value in attributes.items() if known.get(key, known) != value}
        if changed:
            known.update(changed)
            self.span.set_attributes(changed)


def _carrier(request):
    """The trace headers of a request: copied onto it by Celery, or under ``request.headers``."""
    carrier = {}
    nested = getattr(request, 'headers', None) or {}
    for key in HEADERS:
        value = getattr(request, key, None) or (nested.get(key) if isinstance(nested, dict) else None)
        if value:
            carrier[key] = str(value)
    return carrier


def _start_execute(task, current):
    request = task.request
    publisher = propagate.extract(_carrier(request))
    publisher_span = trace.get_current_span(publisher).get_span_context()
    ambient = trace.get_current_span().get_span_context()
    attributes = {'user_tasks.task.name': task.name, 'messaging.message.id': request.id or '',
                  'user_tasks.attempt': (request.retries or 0) + 1,
                  **_messaging('process', delivery_queue(request) or routed_queue(task.name))}
    status = getattr(request, 'user_task_status', None)  # cached by task_prerun's transition
    if status is not None and status.task_id == request.id:
        attributes.update(status_attributes(status))
        attributes['user_tasks.attempt'] = (request.retries or 0) + 1
    if ambient.is_valid:  # inside Celery instrumentation's run span: stay there, link the publisher
        links = [Link(publisher_span)] if publisher_span.is_valid and publisher_span != ambient else []
        span = current.start_span('user_tasks.execute', kind=SpanKind.CONSUMER, attributes=attributes, links=links)
    else:
        span = current.start_span('user_tasks.execute', context=publisher, kind=SpanKind.CONSUMER,
                                  attributes=attributes)
    return span, attributes


def around_execute(task, proceed):
    """
    Run a task body (``lifecycle.EXECUTE``) inside its ``user_tasks.execute`` span.

    The span stays open after the body, until ``task_postrun`` (``end_execute``), so the
    events of the attempt's end land on it.
    """
    request = task.request
    task_id = getattr(request, 'id', None)
    current = _tracer_or_none() if task_id else None
    if current is None:
        return proceed()
    execution = token = None
    try:
        execution = _Execution(*_start_execute(task, current))
        token = context.attach(trace.set_span_in_context(execution.span))
        _open[task_id] = execution
        _custom_attributes({'user_tasks.task.name': task.name, 'messaging.message.id': task_id,
                            'user_tasks.attempt': (request.retries or 0) + 1})
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')
    try:
        return proceed()
    finally:
        if token is not None:
            context.detach(token)
        if execution is not None and getattr(request, 'called_directly', False):
            end_execute(task_id=task_id)  # no task_postrun will come


def end_execute(sender=None, task_id=None, **kwargs):
    """End the attempt's span (``task_postrun``)."""
    execution = _open.pop(task_id, None)
    if execution is None:
        return
    try:
        execution.span.end()
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')


# -- lifecycle receiver -------------------------------------------------------------------


def on_event(sender, status=None, kind=None, **details):
    """Put a lifecycle event on the open execute span of its task, if this process has one."""
    if status is None or not _open:
        return
    execution = _open.get(status.task_id)
    if execution is None:
        return
    try:
        span = execution.span
        if kind == lifecycle.STARTED:
            execution.update(status_attributes(status))
        elif kind == lifecycle.PROGRESS:
            now = time.monotonic()
            if now - execution.last_progress >= PROGRESS_INTERVAL or status.completed_steps >= status.total_steps:
                execution.last_progress = now
                span.add_event('user_tasks.progress', {'user_tasks.completed_steps': status.completed_steps,
                                                       'user_tasks.total_steps': status.total_steps})
        elif kind == lifecycle.RETRIED:
            attributes = {'user_tasks.attempt': status.attempts}
            reason = details.get('exception')
            if reason is not None:
                attributes['error.type'] = utils.error_type(reason)
            span.add_event('user_tasks.retry', attributes)
            execution.update({'user_tasks.state': status.state})
        elif kind == lifecycle.STOPPED:
            _stopped(execution, status, details.get('exception'))
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')


def _stopped(execution, status, exc):
    span = execution.span
    attributes = status_attributes(status)
    attributes['user_tasks.state'] = status.state
    attributes['user_tasks.completed_steps'] = status.completed_steps
    if status.state == status.CANCELED:
        execution.update(attributes)
        span.add_event('user_tasks.canceled')
    elif status.state == status.FAILED:
        if exc is not None:
            attributes['error.type'] = utils.error_type(exc)
        execution.update(attributes)
        _mark_failed(span, exc)
    else:
        execution.update(attributes)


# -- cancel -------------------------------------------------------------------------------


def around_cancel(status, proceed):
    """Wrap ``UserTaskStatus.cancel`` (``lifecycle.CANCEL``) in a ``user_tasks.cancel`` span."""
    current = _tracer_or_none()
    if current is None:
        return proceed()
    try:
        attributes = status_attributes(status)
        attributes['user_tasks.status.previous_state'] = status.state
        attributes['user_tasks.is_container'] = bool(status.is_container)
        span = current.start_span('user_tasks.cancel', kind=SpanKind.INTERNAL, attributes=attributes)
    except Exception:  # noqa: BLE001  telemetry never breaks a task or a request
        telemetry_error('tracing')
        return proceed()
    with _in_span(span):
        changed = proceed()
        span.set_attributes({'user_tasks.state': status.state, 'user_tasks.cancel.changed': bool(changed)})
        return changed

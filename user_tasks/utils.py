"""
Helpers for reading Celery task messages, as django-user-tasks 4.0 shipped them.

Celery's message protocol 2 splits a message into headers and a body of
``(args, kwargs, embed)``; protocol 1 sends one dict.  ``proto2_to_proto1`` turns the
first into the second.  These are public names kept with 4.0's exact results for hosts
that call them; user_tasks' own tracking reads messages with
``user_tasks.canvas.message_from_proto2``, so it never depends on their output.
Nothing here changes the message it is given.

It also holds the small checks every layer shares: ``is_user_task``,
``user_task_name`` and ``error_type``.  A leaf: it imports nothing from user_tasks.
"""
from celery import chain  # module attribute: tests and callers may replace it

__all__ = [
    'USER_TASK_MARKER', 'chain', 'error_type', 'extract_proto2_embed', 'extract_proto2_headers',
    'is_user_task', 'proto2_to_proto1', 'user_task_name',
]

#: Class attribute that ``UserTaskMixin`` sets to True: what ``is_user_task`` looks for.
USER_TASK_MARKER = 'tracks_user_task_status'
#: The keyword argument naming a group, chain or chord's container row.
NAME_KEYWORD = 'user_task_name'


def is_user_task(task):
    """
    Whether ``task`` (a Celery task, or None) tracks its status: its class uses ``UserTaskMixin``.

    A class attribute rather than ``isinstance``, so the layers below ``user_tasks.tasks``
    (canvas, metrics) can ask without importing it.
    """
    return getattr(task, USER_TASK_MARKER, False) is True


def user_task_name(kwargs):
    """The container name a task's keyword arguments carry (``user_task_name``), or None."""
    return (kwargs or {}).get(NAME_KEYWORD) or None


def error_type(exception):
    """
    The qualified class name of ``exception``, with its module unless it is a builtin.

    ``ValueError``, ``billiard.exceptions.WorkerLostError``: the one spelling of an
    error's type, in span attributes (``error.type``) and in the ``error_type`` metric
    label (which also caps the set of values).
    """
    cls = type(exception)
    return cls.__qualname__ if cls.__module__ == 'builtins' else f'{cls.__module__}.{cls.__qualname__}'


def extract_proto2_headers(id, retries=0, eta=None, expires=None, group=None, timelimit=None,  # noqa: A002
                           task=None, **_):
    """Return the eight protocol-1 fields held in protocol-2 headers."""
    return {
        'id': id,
        'task': task,
        'retries': retries,
        'eta': eta,
        'expires': expires,
        'utc': True,
        'taskset': group,
        'timelimit': timelimit or (None, None),
    }


def extract_proto2_embed(callbacks=None, errbacks=None, task_chain=None, chord=None, **_):
    """Return the protocol-1 fields held in a protocol-2 body's embed dict (``chain`` from ``task_chain``)."""
    return {
        'callbacks': callbacks or [],
        'errbacks': errbacks,
        'chain': task_chain,
        'chord': chord,
    }


def proto2_to_proto1(body, headers):
    """
    Return the protocol-1 dict for a protocol-2 ``(args, kwargs, embed)`` body and its headers.

    A chain in the embed is appended to the callbacks as ``chain(<list>)``, built with this
    module's ``chain`` attribute looked up at call time; the caller's lists are copied first.
    """
    args, kwargs, embed = body
    embedded = extract_proto2_embed(**(embed or {}))
    chained = embedded.pop('chain')
    message = dict(extract_proto2_headers(**headers), args=args, kwargs=kwargs, **embedded)
    message['callbacks'] = list(message['callbacks'])
    if chained:
        message['callbacks'].append(globals()['chain'](list(chained)))
    return message

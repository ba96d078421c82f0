"""
Helpers for reading Celery task messages.

Celery's message protocol 2 splits a message into headers and a body of
``(args, kwargs, embed)``; protocol 1 sends one dict.  ``proto2_to_proto1`` turns
the first into the second, so the rest of user_tasks reads one shape.  Nothing here
changes the message being sent.

It also holds the small checks every layer shares: ``is_user_task``,
``user_task_name`` and ``error_type``.  A leaf: it imports nothing from user_tasks.
"""
from celery import (
    chain,  # module attribute: tests and callers may replace it
    signature,
)

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
    The fully qualified class name of ``exception``, e.g. ``builtins.ValueError``.

    The one spelling of an error's type: span attributes (``error.type``) use it as is,
    the ``error_type`` metric label drops the ``builtins.`` prefix and caps the set.
    """
    cls = type(exception)
    return f'{cls.__module__}.{cls.__qualname__}'


def extract_proto2_headers(id, retries=0, eta=None, expires=None, group=None, timelimit=None,  # noqa: A002
                           task=None, root_id=None, parent_id=None, **_):
    """Return the protocol-1 fields held in protocol-2 headers."""
    return {
        'id': id,
        'task': task,
        'retries': retries,
        'eta': eta,
        'expires': expires,
        'utc': True,
        'taskset': group,
        'timelimit': timelimit or (None, None),
        'root_id': root_id,
        'parent_id': parent_id,
    }


def extract_proto2_embed(callbacks=None, errbacks=None, chain=None, chord=None, **_):
    """
    Return the protocol-1 fields held in a protocol-2 body's embed dict.

    Protocol 2 sends the rest of a chain as ``chain`` (last task first); protocol 1
    expressed it as a callback, so it becomes one chain signature at the front.
    """
    callbacks = list(callbacks or [])
    if chain:
        # A worker continuing a chain publishes the rest as plain dicts, which Celery's
        # chain() would fold into a single signature.
        tail = [signature(sig) if type(sig) is dict else sig for sig in reversed(chain)]
        callbacks.insert(0, globals()['chain'](tail))
    return {
        'callbacks': callbacks or None,
        'errbacks': errbacks,
        'chord': chord,
    }


def proto2_to_proto1(body, headers):
    """Return the protocol-1 dict for a protocol-2 ``(args, kwargs, embed)`` body and its headers."""
    args, kwargs, embed = body
    message = extract_proto2_headers(**headers)
    message.update(extract_proto2_embed(**(embed or {})))
    message['args'] = args
    message['kwargs'] = kwargs
    return message

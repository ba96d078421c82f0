"""
Helpers for reading Celery task messages, as django-user-tasks 4.0 shipped them.

Celery's message protocol 2 splits a message into headers and a body of
``(args, kwargs, embed)``; protocol 1 sends one dict.  ``proto2_to_proto1`` turns the
first into the second.  These are public names kept with 4.0's exact results for hosts
that call them; user_tasks' own tracking reads messages with
``user_tasks.canvas.message_from_proto2``, so it never depends on their output.
Nothing here changes the message it is given.
"""
from celery import chain  # module attribute: tests and callers may replace it

__all__ = ['chain', 'extract_proto2_embed', 'extract_proto2_headers', 'proto2_to_proto1']


def extract_proto2_headers(id, retries=0, eta=None, expires=None, group=None, timelimit=None,  # pylint: disable=redefined-builtin
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

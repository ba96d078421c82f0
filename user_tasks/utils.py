"""
Helpers for reading Celery task messages.

Celery's message protocol 2 splits a message into headers and a body of
``(args, kwargs, embed)``; protocol 1 sends one dict.  ``proto2_to_proto1`` turns
the first into the second, so the rest of user_tasks reads one shape.  Nothing here
changes the message being sent.
"""
from celery import chain  # module attribute: tests and callers may replace it
from celery import signature

__all__ = ['chain', 'extract_proto2_embed', 'extract_proto2_headers', 'proto2_to_proto1']


def extract_proto2_headers(id, retries=0, eta=None, expires=None, group=None, timelimit=None,  # pylint: disable=redefined-builtin
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


def extract_proto2_embed(callbacks=None, errbacks=None, chain=None, chord=None, **_):  # pylint: disable=redefined-outer-name
    """
    Return the protocol-1 fields held in a protocol-2 body's embed dict.

    Protocol 2 sends the rest of a chain as ``chain`` (last task first); protocol 1
    expressed it as a callback, so it becomes one chain signature at the front.
    """
    callbacks = list(callbacks or [])
    if chain:
        # A worker continuing a chain publishes the rest as plain dicts, which Celery's
        # chain() would fold into a single signature.
        tail = [signature(sig) if type(sig) is dict else sig for sig in reversed(chain)]  # pylint: disable=unidiomatic-typecheck
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

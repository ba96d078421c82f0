"""
One owner per canvas: a group, chain or chord whose user tasks belong to two users is refused.

A canvas is recorded as one container row owned by one user, and its owner sees, cancels
and deletes everything under it and receives its children's stage and error texts.  So
the members of a canvas must all belong to that user (ADR 0008).  The check runs before
the first user task of a canvas is published (``UserTaskMixin.apply_async``) or run
eagerly (``UserTaskMixin.apply``): it reads the whole canvas being applied from the
caller's stack, the same way ``user_tasks.canvas`` sizes a group, so a refused canvas
writes no row and sends no user task message.  ``user_tasks.canvas`` also refuses to put
a row under a container of another user, for producers that bypass ``apply_async``.

Layer: operations, above ``canvas`` (whose ``user_id_of`` it uses); imports the leaves.
"""
import sys

from celery import Task, current_app
from celery.canvas import Signature, _chain, chord, group, maybe_signature

from user_tasks.canvas import user_id_of
from user_tasks.exceptions import MixedOwnersError
from user_tasks.utils import is_user_task

#: How far up the caller's stack to look for the canvas being applied.
_STACK_DEPTH = 80
#: The methods through which Celery's canvases publish or run their members, and a task's ``__call__``.
_CANVAS_METHODS = frozenset({'apply_async', 'apply', 'run', '_apply_tasks', '__call__', 'delay'})


def _user_task(sig):
    task = current_app.tasks.get(sig.task) if sig.task else None
    return task if is_user_task(task) else None


def _owner(task, args, kwargs):
    """The normalised user id of one invocation, or None when it has none (reported elsewhere)."""
    try:
        return user_id_of(task.arguments_as_dict(*(args or ()), **(kwargs or {})))
    except TypeError:
        return None


def owners_of(sig, found=None):
    """The set of user ids of every user task in ``sig`` (a task, chain, group or chord, nested)."""
    found = set() if found is None else found
    sig = maybe_signature(sig, app=current_app)
    if sig is None:
        return found
    if isinstance(sig, chord):
        for member in sig.tasks:
            owners_of(member, found)
        if sig.body is not None:
            owners_of(sig.body, found)
    elif isinstance(sig, (group, _chain)):
        for member in sig.tasks:
            owners_of(member, found)
    elif isinstance(sig, Signature):
        task = _user_task(sig)
        if task is not None:
            owner = _owner(task, sig.args, sig.kwargs)
            if owner is not None:
                found.add(owner)
    for link in (sig.options.get('link') or []) if isinstance(sig, Signature) else []:
        owners_of(link, found)
    return found


def _canvases_being_applied():
    """Every group, chain or chord on the caller's stack (the ones being published or run)."""
    frame = sys._getframe(2)  # noqa: SLF001  the documented way to read the caller's stack
    seen = []
    for _ in range(_STACK_DEPTH):
        if frame is None:
            break
        if frame.f_code.co_name not in _CANVAS_METHODS:
            frame = frame.f_back  # reading f_locals is the expensive part: only where a canvas can be
            continue
        owner = frame.f_locals.get('self')
        if isinstance(owner, Task) and frame.f_code.co_name == '__call__':
            break  # a task body publishing its own tasks (eager mode): the canvas above is not theirs
        if isinstance(owner, (group, _chain, chord)) and not any(owner is known for known in seen):
            seen.append(owner)
        frame = frame.f_back
    return seen


def refuse_mixed_owners(task, args, kwargs, options):
    """Raise ``MixedOwnersError`` when this invocation belongs to a canvas of several users."""
    canvases = _canvases_being_applied()
    if not (canvases or options.get('link') or options.get('chain') or options.get('chord') is not None):
        return  # a lone task: nothing to compare its owner with
    owners = set()
    own = _owner(task, args, kwargs)
    if own is not None:
        owners.add(own)
    for key in ('link', 'chain'):
        for sig in options.get(key) or []:
            owners_of(sig, owners)
    if options.get('chord') is not None:
        owners_of(options['chord'], owners)
    for canvas in canvases:
        # A group publishes its members one by one: read each canvas once, not once per member.
        cached = canvas.__dict__.get('_user_tasks_owners')
        if cached is None:
            cached = canvas.__dict__['_user_tasks_owners'] = frozenset(owners_of(canvas))
        owners |= cached
    if len(owners) > 1:
        raise MixedOwnersError(
            'A group, chain or chord may only hold user tasks of one user, but this one holds tasks of '
            f'users {", ".join(str(owner) for owner in sorted(owners, key=str))}: publish one per user.'
        )

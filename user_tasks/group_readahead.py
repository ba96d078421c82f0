"""
The members a group is about to publish, read ahead from Celery's publishing loop.

A group's members are sent one message at a time.  ``group._apply_tasks`` walks an
``itertools.tee`` of a lazy generator that clones and freezes each member (its task id
included); at the first member's publish, a copy of that ``tee`` reads the members still
to come without disturbing the loop, which then sends the very signatures that were read.
``user_tasks.canvas`` uses this to write a group's container and all its members in one
bulk INSERT (ADR 0003).  Like the sizing of a group, it depends on Celery's internals:
when the frame or its locals are not what this expects, it answers None and the members
are recorded one by one.

Layer: leaves (beside ``checks``).  Imports only Celery.
"""
import copy
import sys

from celery.canvas import Signature, _chain, group

#: How far up the caller's stack to look for the group being applied.
_STACK_DEPTH = 80


def applying_frame(group_id):
    """The frame of ``group._apply_tasks`` publishing ``group_id`` right now, or None."""
    frame = sys._getframe(1)  # noqa: SLF001  the documented way to read the caller's stack
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return None
        owner = frame.f_locals.get('self')
        if isinstance(owner, group) and frame.f_code.co_name == '_apply_tasks':
            if owner.options.get('task_id') in (None, group_id) or _frame_group_id(frame) == group_id:
                return frame
            return None
        frame = frame.f_back
    return None


def _frame_group_id(frame):
    current = frame.f_locals.get('current_task')
    return current[2] if isinstance(current, tuple) and len(current) == 3 else None


def members_to_come(frame, group_id):
    """
    ``(signature, args, kwargs)`` of each member the group will publish after the current one, or None.

    The arguments are the ones ``Signature.apply_async`` will send (the group's partial
    arguments merged in).  Only plain signatures qualify: a member that is a chain, carries
    callbacks or belongs to another group is recorded by its own publish, so the whole
    group is then (None).
    """
    remaining = frame.f_locals.get('tasks')
    if remaining is None or not hasattr(remaining, '__copy__'):
        return None
    args, kwargs = frame.f_locals.get('args'), frame.f_locals.get('kwargs')
    members = []
    for entry in copy.copy(remaining):
        if not (isinstance(entry, tuple) and len(entry) == 3):
            return None
        sig, _, member_group = entry
        if (member_group != group_id or not isinstance(sig, Signature) or isinstance(sig, (group, _chain))
                or sig.options.get('link') or sig.options.get('chain') or not sig.options.get('task_id')):
            return None
        member_args, member_kwargs, _ = sig._merge(args, kwargs, None)  # noqa: SLF001
        members.append((sig, member_args, member_kwargs))
    return members

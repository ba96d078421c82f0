"""
Recording user tasks when they are published, including groups, chains and chords.

The row for a task is written when its message is published.  A chain, group or
chord gets a container row (``is_container``, ``task_class`` ``celery.chain`` /
``celery.group`` / ``celery.chord``) whose children are its UserTask members; a
chord's header group is a container under the chord.  Everything a publish needs is
read from the message (``message_from_proto2`` for protocol 2), with one exception: a group's
members are sent one message at a time and no message says how many there are, so
the group object being applied is read from the publishing stack to size the
container up front.  That is what stops a fast first child from completing a group
whose later members have not been recorded yet.  When the group cannot be found
(another Celery internals layout), the container grows as members arrive.

From the same frame, the first member's publish also reads the members still to come
(``user_tasks.group_readahead``), so a group of plain signatures (a chord's header too) is
written in two INSERTs, its container then all its members, instead of one per member.

Layer: operations.  Imports the domain (``models``), the hub (``lifecycle``) and the
leaves; the rows it writes are announced by the model (``submit``), and observers wrap
the recording through ``lifecycle.around(SUBMIT, ...)``.
"""
import logging
import sys

from celery import chain, current_app, current_task
from celery.canvas import _chain, group, maybe_signature
from django.contrib.auth import get_user_model
from django.db import IntegrityError, router, transaction

from user_tasks import commit, group_readahead, lifecycle, status_connection, utils
from user_tasks.exceptions import MixedOwnersError
from user_tasks.models import UserTaskStatus
from user_tasks.recent import Recent

LOG = logging.getLogger(__name__)

_MISSING_USER = 'Each invocation of a UserTaskMixin subclass must include the user_id'
_recorded = Recent(2000)     # task ids whose rows this process wrote
_containers = Recent(2000)   # container task id -> (row, sized up front)


def user_id_of(arguments):
    """The user id of one invocation's arguments, converted to the user model's key type; raise TypeError."""
    if 'user_id' not in arguments:
        raise TypeError(_MISSING_USER)
    user_id = arguments['user_id']
    try:
        return get_user_model()._meta.pk.to_python(user_id)
    except Exception as exc:  # noqa: BLE001  any failure to convert is the caller's bad user_id
        raise TypeError(f'Invalid user_id: {user_id}') from exc


def _describe(task, args, kwargs, task_id):
    """An unsaved status row for one invocation of a UserTask."""
    arguments = task.arguments_as_dict(*(args or ()), **(kwargs or {}))
    # As 4.0: a missing or malformed user_id fails before any host hook sees the arguments.
    user_id = user_id_of(arguments)
    return UserTaskStatus(
        task_id=task_id,
        task_class=task.name,
        name=task.generate_name(arguments),
        total_steps=task.calculate_total_steps(arguments),
        user_id=user_id,
    )


def _signature_task(sig):
    task = current_app.tasks.get(sig.task) if sig.task else None
    return task if utils.is_user_task(task) else None


def _flatten_chain(sig):
    """The plain signatures of a chain (or of protocol-1 linked callbacks), in run order."""
    sig = maybe_signature(sig, app=current_app)
    if isinstance(sig, _chain):
        for member in sig.tasks:
            yield from _flatten_chain(member)
        return
    yield sig
    links = sig.options.get('link') or []
    if len(links) == 1:
        yield from _flatten_chain(links[0])


def _steps_and_name(sig):
    """(total steps, first user_task_name) of a signature, a chain or a nested group."""
    sig = maybe_signature(sig, app=current_app)
    if isinstance(sig, group):
        members = sig.tasks
    elif isinstance(sig, _chain):
        members = sig.tasks
    else:
        task = _signature_task(sig)
        if task is None:
            return 0, None
        arguments = task.arguments_as_dict(*sig.args, **sig.kwargs)
        return task.calculate_total_steps(arguments), utils.user_task_name(sig.kwargs)
    total, name = 0, None
    for member in members:
        steps, member_name = _steps_and_name(member)
        total += steps
        name = name or member_name
    return total, name


def _applying_group(group_id):
    """The group whose members are being published right now, read from the caller's stack."""
    frame = sys._getframe(1)  # noqa: SLF001  the documented way to read the caller's stack
    for _ in range(80):
        if frame is None:
            return None
        owner = frame.f_locals.get('self')
        if isinstance(owner, group) and frame.f_code.co_name in ('_apply_tasks', 'apply_async', 'run'):
            if owner.options.get('task_id') in (None, group_id) or frame.f_locals.get('group_id') == group_id:
                return owner
        frame = frame.f_back
    return None


def _record_group_at_once(status, group_id, user_task_name, queue, parent=None):
    """Write a group's container (under ``parent``: a chord's) and every member in two INSERTs, or None."""
    frame = group_readahead.applying_frame(group_id)
    to_come = group_readahead.members_to_come(frame, group_id) if frame is not None else None
    if to_come is None:
        return None
    members = []
    for sig, args, kwargs in to_come:
        task = _signature_task(sig)
        if task is not None:
            members.append(_describe(task, args, kwargs, sig.options['task_id']))
    total, name = _steps_and_name(frame.f_locals['self'])
    rows = [status] + members
    container = UserTaskStatus(task_id=group_id, task_class='celery.group', is_container=True,
                               name=name or user_task_name or status.name, total_steps=total,
                               user_id=status.user_id, parent=parent)
    alias = router.db_for_write(UserTaskStatus)
    if any(row.user_id != status.user_id for row in members):
        return None  # another owner: each member's own publish refuses it (ADR 0008)
    try:
        # The events wait for the block: a refused INSERT announces nothing.
        with status_connection.publishing(alias), commit.atomic(using=alias):
            container.submit()
            for row in rows:
                row.parent = container
            UserTaskStatus.submit_many(rows, queues={status.task_id: queue})
    except IntegrityError:  # the container exists already, or a member's user does not
        return None
    _containers[group_id] = (container, True)
    for row in [container] + rows:
        _recorded[row.task_id] = True
    return status


def _save(row, queue=None):
    with status_connection.publishing(router.db_for_write(UserTaskStatus)):
        row.submit(queue=queue)
    _recorded[row.task_id] = True
    return row


def _container(task_id, task_class, user_id, name, total_steps, parent=None, sized=False):
    """Get or create the container row ``task_id``; returns (row, created, sized up front)."""
    known = _containers.get(task_id)
    if known is not None:
        return _same_owner(known[0], user_id), False, known[1]
    row = UserTaskStatus.objects.filter(task_id=task_id).first()
    created = row is None
    if created:
        row = UserTaskStatus(task_id=task_id, task_class=task_class, is_container=True, name=name or '',
                             total_steps=total_steps, user_id=user_id, parent=parent)
        try:
            with commit.atomic(using=router.db_for_write(UserTaskStatus)):
                _save(row)
        except IntegrityError:  # another publisher created it first
            row, created = UserTaskStatus.objects.get(task_id=task_id), False
    _same_owner(row, user_id)
    _containers[task_id] = (row, sized)
    return row, created, sized


def _same_owner(container, user_id):
    """The container, unless it belongs to another user: a row never goes under another user's canvas."""
    if container.user_id != user_id:
        raise MixedOwnersError(f'Not recording a task of user {user_id} under the {container.task_class} '
                               f'{container.task_id} of user {container.user_id} (ADR 0008)')
    return container


def _group_container(group_id, status, user_task_name, parent=None):
    """The container of group ``group_id`` for a member about to be recorded."""
    applying = _applying_group(group_id)
    if applying is not None:
        total, name = _steps_and_name(applying)
        return _container(group_id, 'celery.group', status.user_id, name or status.name, total, parent, sized=True)
    return _container(group_id, 'celery.group', status.user_id, user_task_name or status.name, 0, parent)


def _grow(container, steps, created, sized, name):
    """Account for a member in a container that was not sized up front."""
    if sized or not steps:
        return
    container.increment_total_steps(steps)
    if name and not created and not container.name:
        container.set_name(name)


def _published_by_a_task(message):
    """
    Whether a running task publishes this message (a chain's next step, a chord's body).

    Protocol 2 says so with ``parent_id``; protocol 1 (edx-platform's) sends no ids, so the
    publishing task is what tells.
    """
    return bool(message.get('parent_id')) or bool(current_task and current_task.request.id)


def record_publish(task, message, queue=None):
    """
    Write the rows for a UserTask message about to be published.

    Arguments:
        task (UserTaskMixin): the task being published.
        message (dict): the message, in protocol-1 shape (see ``user_tasks.utils.proto2_to_proto1``).
        queue (str or None): its routing key, when the publisher knows it (for the SUBMITTED event).

    Returns:
        UserTaskStatus or None: the task's row, or None when it had been recorded already.

    Raises:
        TypeError: the message has no ``user_id``, or one that names no user.
    """
    task_id = message['id']
    if message.get('retries') or _recorded.get(task_id):
        return None
    if _published_by_a_task(message) and UserTaskStatus.objects.filter(task_id=task_id).exists():
        return None  # a chain step or chord body recorded when its canvas was first published
    status = _describe(task, message.get('args'), message.get('kwargs'), task_id)
    user_task_name = utils.user_task_name(message.get('kwargs'))
    connection = transaction.get_connection(router.db_for_write(UserTaskStatus))
    if connection.in_atomic_block and not get_user_model().objects.filter(pk=status.user_id).exists():
        # Foreign keys are checked at commit inside a transaction: check now, so a bad
        # user id fails this publish rather than the caller's whole transaction.
        raise TypeError(f'Invalid user_id: {status.user_id}')
    try:
        return lifecycle.around(lifecycle.SUBMIT, status, _record, status, message, user_task_name, queue)
    except IntegrityError as exc:
        if not get_user_model().objects.filter(pk=status.user_id).exists():
            raise TypeError(f'Invalid user_id: {status.user_id}') from exc
        raise


def _record(status, message, user_task_name, queue):
    chain_tail = []
    for callback in (message.get('callbacks') or [])[:1]:
        chain_tail = list(_flatten_chain(callback))
    group_id = message.get('taskset')
    if not group_id:
        group_id = next((sig.options.get('group_id') for sig in reversed(chain_tail)
                         if sig.options.get('group_id')), None)
    chord_body = message.get('chord')
    parent = None
    if chord_body is not None and group_id:
        body = maybe_signature(chord_body, app=current_app)
        if not chain_tail and _containers.get(group_id) is None:
            chord = _chord_container(status, group_id, body, user_task_name)
            recorded = _record_group_at_once(status, group_id, user_task_name, queue, parent=chord)
            if recorded is not None:
                return recorded
        parent = _chord_containers(status, group_id, body, user_task_name)
    elif group_id:
        if not chain_tail and _containers.get(group_id) is None:
            recorded = _record_group_at_once(status, group_id, user_task_name, queue)
            if recorded is not None:
                return recorded
        parent, created, sized = _group_container(group_id, status, user_task_name)
        steps = status.total_steps + sum(_steps_and_name(sig)[0] for sig in chain_tail)
        _grow(parent, steps, created, sized, user_task_name)
    if chain_tail:
        return _record_chain(status, chain_tail, parent, user_task_name, queue)
    status.parent = parent
    return _save(status, queue)


def _record_chain(status, tail, parent, user_task_name, queue):
    """Record a chain's container and every UserTask member, from its first message."""
    members = [status]
    for sig in tail:
        task = _signature_task(sig)
        if task is not None and sig.options.get('task_id'):
            members.append(_describe(task, sig.args, sig.kwargs, sig.options['task_id']))
    owners = {member.user_id for member in members}
    if len(owners) > 1:
        raise MixedOwnersError(f'Not recording a chain of users {sorted(owners, key=str)} (ADR 0008)')
    name = user_task_name or next((utils.user_task_name(sig.kwargs) for sig in tail
                                   if utils.user_task_name(sig.kwargs)), None)
    container = _save(UserTaskStatus(
        task_id=f'{status.task_id}-chain', task_class='celery.chain', is_container=True,
        name=name or status.name, total_steps=sum(m.total_steps for m in members),
        user_id=status.user_id, parent=parent))
    for member in members:
        member.parent = container
    UserTaskStatus.submit_many(members, queues={status.task_id: queue})
    for member in members:
        _recorded[member.task_id] = True
    return status


def _chord_containers(status, group_id, body, user_task_name):
    """The header group container of a chord, under the chord's container (with its body row)."""
    chord = _chord_container(status, group_id, body, user_task_name)
    header, created, sized = _group_container(group_id, status, user_task_name, parent=chord)
    if created and header.parent_id is None:
        header.parent = chord
    _grow(header, status.total_steps, created, sized, user_task_name)
    return header


def _chord_container(status, group_id, body, user_task_name):
    """The chord's container row, written with its body's row at the first header member's publish."""
    chord_id = f'{group_id}-chord'
    known = _containers.get(chord_id)
    if known is None:
        body_task = _signature_task(body)
        body_row = None
        if body_task is not None and body.options.get('task_id'):
            body_row = _describe(body_task, body.args, body.kwargs, body.options['task_id'])
            if body_row.user_id != status.user_id:
                raise MixedOwnersError(f'Not recording a chord of users {status.user_id} and {body_row.user_id} '
                                       '(ADR 0008)')
        applying = _applying_group(group_id)
        header_total, header_name = _steps_and_name(applying) if applying is not None else (0, None)
        name = header_name or user_task_name or utils.user_task_name(body.kwargs) or status.name
        chord, created, _ = _container(chord_id, 'celery.chord', status.user_id, name,
                                       header_total + (body_row.total_steps if body_row else 0),
                                       sized=applying is not None)
        if created and body_row is not None:
            body_row.parent = chord
            _save(body_row)
    else:
        chord = known[0]
    return chord


def describe(task, args, kwargs, task_id):
    """An unsaved status row for one standalone invocation of a UserTask (see ``user_tasks.admission``)."""
    return _describe(task, args, kwargs, task_id)


def record_standalone(status):
    """Write the row described by ``describe`` for a publish outside any group, chain or chord."""
    return lifecycle.around(lifecycle.SUBMIT, status, _record, status, {}, None, None)


def forget_unsent(task_id):
    """
    Delete the row this process recorded for a message the broker then refused (if still Pending).

    A "Try again" (``user_tasks.retrying``) that recorded it linked the old row to it: that
    link goes too, so the old task can still be tried again.  Only the failure path pays
    for it (the look-up by user and class uses the index that starts with them).
    """
    if not _recorded.get(task_id):
        return
    unsent = UserTaskStatus.objects.filter(task_id=task_id, state=UserTaskStatus.PENDING)
    row = unsent.values('uuid', 'user_id', 'task_class').first()
    if row is None:
        return
    unsent.delete()
    UserTaskStatus.objects.filter(user_id=row['user_id'], task_class=row['task_class'],
                                  retried_as=row['uuid']).update(retried_as=None)


def message_from_proto2(body, headers):
    """
    The protocol-1 shaped message of a protocol-2 ``(args, kwargs, embed)`` body and its headers.

    Unlike 4.0's ``user_tasks.utils.proto2_to_proto1`` (kept as it was), this reads what
    tracking needs: ``parent_id``/``root_id``, and the rest of a chain, which protocol 2
    sends as the embed key ``chain`` (last task first) and protocol 1 as a first callback.
    Nothing in the message is changed.
    """
    args, kwargs, embed = body
    embed = embed or {}
    callbacks = list(embed.get('callbacks') or [])
    if embed.get('chain'):
        # A worker continuing a chain publishes the rest as plain dicts, which Celery's
        # chain() would fold into a single signature.
        tail = [maybe_signature(sig, app=current_app) if type(sig) is dict else sig
                for sig in reversed(embed['chain'])]
        callbacks.insert(0, chain(tail))
    return {
        'id': headers.get('id'),
        'task': headers.get('task'),
        'args': args,
        'kwargs': kwargs,
        'retries': headers.get('retries') or 0,
        'taskset': headers.get('group'),
        'chord': embed.get('chord'),
        'callbacks': callbacks or None,
        'errbacks': embed.get('errbacks'),
        'parent_id': headers.get('parent_id'),
        'root_id': headers.get('root_id'),
    }


def message_from_options(task, args, kwargs, task_id, options):
    """The protocol-1 shaped message ``apply_async`` will send, built from its options."""
    callbacks = list(options.get('link') or [])
    if options.get('chain'):
        callbacks.insert(0, utils.chain(list(reversed(options['chain']))))
    return {
        'id': task_id,
        'task': task.name,
        'args': args or (),
        'kwargs': kwargs or {},
        'retries': options.get('retries', 0),
        'taskset': options.get('group_id'),
        'chord': options.get('chord'),
        'callbacks': callbacks or None,
        'parent_id': options.get('parent_id'),
        'root_id': options.get('root_id'),
    }


def create_status_for_request(task, request):
    """Write the row for a running task that no publisher recorded (eager mode, non-Django producers)."""
    status = _describe(task, request.args, request.kwargs, request.id)
    # The registered name of a default-named task is module.function.
    status.task_class = task.name
    alias = router.db_for_write(UserTaskStatus)
    if transaction.get_connection(alias).in_atomic_block and not get_user_model().objects.filter(
            pk=status.user_id).exists():
        # As in ``record_publish``: inside a transaction (an eager run under ``TestCase`` too)
        # the foreign key is only checked at commit, so the IntegrityError below never comes.
        raise TypeError(f'Invalid user_id: {status.user_id}')
    try:
        with commit.atomic(using=alias):
            return _save(status)
    except IntegrityError as exc:
        existing = UserTaskStatus.objects.filter(task_id=request.id).first()
        if existing is not None:
            return existing
        raise TypeError(f'Invalid user_id: {status.user_id}') from exc


__all__ = ['create_status_for_request', 'message_from_options', 'message_from_proto2', 'record_publish', 'user_id_of']

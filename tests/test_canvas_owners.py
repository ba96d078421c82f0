"""One owner per canvas (ADR 0008): a group, chain or chord mixing users is refused at publish."""
import pytest
from celery import chain, chord, group
from django.db import transaction

from tests.conftest import UNCONSUMED_QUEUE
from tests.tasks import plain_task, sample_task, spawning_task
from user_tasks import canvas
from user_tasks.exceptions import MixedOwnersError
from user_tasks.models import UserTaskArtifact, UserTaskStatus

S = UserTaskStatus


def _mixed_canvases(a, b):
    return {
        'group': group(sample_task.si(a.pk, label='a'), sample_task.si(b.pk, label='b')),
        'chain': chain(sample_task.si(a.pk, label='a'), sample_task.si(b.pk, label='b')),
        'chord body': chord([sample_task.si(a.pk, label='a1'), sample_task.si(a.pk, label='a2')],
                            sample_task.si(b.pk, label='b')),
        'chord header': chord([sample_task.si(a.pk, label='a'), sample_task.si(b.pk, label='b')],
                              sample_task.si(a.pk, label='a2')),
        'chain in group': group(chain(sample_task.si(a.pk, label='a1'), sample_task.si(a.pk, label='a2')),
                                sample_task.si(b.pk, label='b')),
        'group in chain': chain(sample_task.si(a.pk, label='a'),
                                group(sample_task.si(a.pk, label='a2'), sample_task.si(b.pk, label='b'))),
        'plain first': group(plain_task.si(), sample_task.si(a.pk, label='a'), sample_task.si(b.pk, label='b')),
    }


SHAPES = list(_mixed_canvases(type('U', (), {'pk': 1}), type('U', (), {'pk': 2})))


def _assert_refused(info, a, b):
    message = str(info.value)
    assert 'one user' in message and str(a.pk) in message and str(b.pk) in message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('shape', SHAPES)
def test_mixed_canvas_is_refused_nothing_written_nothing_sent(protocol, user, other_user, published, shape):
    sig = _mixed_canvases(user, other_user)[shape]
    with pytest.raises(MixedOwnersError) as info:
        sig.apply_async(queue=UNCONSUMED_QUEUE)
    _assert_refused(info, user, other_user)
    assert not S.objects.exists()
    # No user task was sent (a plain member published before the first user task is not ours to stop).
    assert [call['task'] for call in published.calls if call['task'] != plain_task.name] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('shape', ['group', 'chain', 'chord body'])
def test_mixed_canvas_refused_inside_an_atomic_block(protocol, user, other_user, published, shape):
    with transaction.atomic():
        with pytest.raises(MixedOwnersError):
            _mixed_canvases(user, other_user)[shape].apply_async(queue=UNCONSUMED_QUEUE)
        assert not S.objects.exists()
    assert not S.objects.exists()
    assert published.calls == []


@pytest.mark.django_db
@pytest.mark.parametrize('shape', ['group', 'chain', 'chain in group', 'group in chain'])
def test_mixed_canvas_refused_in_eager_mode_before_any_body_runs(eager, user, other_user, shape):
    with pytest.raises(MixedOwnersError) as info:
        _mixed_canvases(user, other_user)[shape].apply_async()
    _assert_refused(info, user, other_user)
    assert not S.objects.exists()
    assert not UserTaskArtifact.objects.exists()  # sample_task writes one when its body runs


@pytest.mark.django_db(transaction=True)
def test_single_owner_canvas_is_still_recorded(protocol, user, other_user, published):
    group(sample_task.si(user.pk), sample_task.si(user.pk)).apply_async(queue=UNCONSUMED_QUEUE)
    sample_task.apply_async((other_user.pk,), queue=UNCONSUMED_QUEUE)  # another user's lone task is fine
    container = S.objects.get(is_container=True)
    assert container.user == user
    assert set(S.objects.filter(parent=container).values_list('user_id', flat=True)) == {user.pk}
    assert len(published.calls) == 3


@pytest.mark.django_db(transaction=True)
def test_row_never_goes_under_another_users_container(user, other_user):
    """A producer that bypasses apply_async (raw message) cannot attach B's task to A's group."""
    group(sample_task.si(user.pk), sample_task.si(user.pk)).apply_async(queue=UNCONSUMED_QUEUE)
    container = S.objects.get(is_container=True)
    canvas._containers.clear()  # another process: nothing remembered
    message = canvas.message_from_options(sample_task, (other_user.pk,), {}, 'intruder-id',
                                          {'group_id': container.task_id})
    with pytest.raises(MixedOwnersError):
        canvas.record_publish(sample_task, message)
    assert not S.objects.filter(task_id='intruder-id').exists()
    assert S.objects.filter(parent=container).count() == 2


@pytest.mark.django_db
def test_a_member_body_may_publish_a_lone_task_for_another_user_in_eager_mode(eager, user, other_user):
    """The canvas on the stack above a running body is not the canvas of what the body publishes."""
    group(spawning_task.si(user.pk, other_user.pk), sample_task.si(user.pk, label='a')).apply_async()
    spawned = S.objects.get(name='Sample spawned')
    assert (spawned.user, spawned.state, spawned.parent) == (other_user, S.SUCCEEDED, None)
    assert set(S.objects.exclude(pk=spawned.pk).values_list('user_id', flat=True)) == {user.pk}

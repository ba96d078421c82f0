"""Groups, chains and chords: container rows at publish and their statuses after a real run."""
import pytest
from celery import chain, chord, group
from django.db import transaction

from tests.conftest import UNCONSUMED_QUEUE, wait_until
from tests.tasks import failing_task, plain_task, sample_task
from user_tasks.models import UserTaskStatus

S = UserTaskStatus


def run_and_wait(signature, stopped, rows, timeout=15):
    """Apply ``signature`` in the worker and wait until ``rows`` stops were announced (see test_tasks.final_row)."""
    result = signature.apply_async()
    assert wait_until(lambda: len(stopped.calls) >= rows, timeout), [c['task_id'] for c in stopped.calls]
    return result


def children(row):
    return list(S.objects.filter(parent=row).order_by('id'))


def assert_all_succeeded_once(stopped):
    rows = list(S.objects.all())
    for row in rows:
        assert row.state == S.SUCCEEDED, (row.task_class, row.state)
        assert row.completed_steps == row.total_steps, row.task_class
        assert row.finished is not None
    assert sorted(stopped.task_ids()) == sorted(row.task_id for row in rows)  # exactly once each
    assert all(c['sender'] is UserTaskStatus and c['db_state'] == S.SUCCEEDED for c in stopped.calls)


def assert_container_sums(container):
    members = children(container)
    assert members
    assert container.is_container
    assert container.total_steps == sum(m.total_steps for m in members)


# -- shapes, run in the in-process worker, protocol 1 and 2 ------------------------------------------

def test_group(protocol, worker, user, stopped):
    sig = group(sample_task.si(user.pk, label='a', steps=1),
                sample_task.si(user.pk, label='b', steps=2, user_task_name='Batch'),
                sample_task.si(user.pk, label='c', steps=3, user_task_name='Ignored'))
    run_and_wait(sig, stopped, rows=4)
    container = S.objects.get(is_container=True)
    assert (container.task_class, container.name, container.total_steps, container.parent) == (
        'celery.group', 'Batch', 6, None)
    members = children(container)
    assert [m.name for m in members] == ['Sample a', 'Sample b', 'Sample c']
    assert all(not m.is_container and m.task_class == 'tests.tasks.sample_task' for m in members)
    assert_container_sums(container)
    assert S.objects.count() == 4
    assert_all_succeeded_once(stopped)


def test_chain(protocol, worker, user, stopped):
    sig = chain(sample_task.si(user.pk, label='first', steps=2),
                sample_task.si(user.pk, label='second', steps=1, user_task_name='Pipeline'),
                sample_task.si(user.pk, label='third', steps=4))
    run_and_wait(sig, stopped, rows=4)
    container = S.objects.get(is_container=True)
    assert (container.task_class, container.name, container.total_steps) == ('celery.chain', 'Pipeline', 7)
    assert [m.name for m in children(container)] == ['Sample first', 'Sample second', 'Sample third']
    assert_container_sums(container)
    assert S.objects.count() == 4
    assert_all_succeeded_once(stopped)


def test_chord(protocol, worker, user, stopped):
    sig = chord([sample_task.si(user.pk, label='h1', steps=1, user_task_name='Report'),
                 sample_task.si(user.pk, label='h2', steps=2)],
                sample_task.si(user.pk, label='body', steps=3))
    result = run_and_wait(sig, stopped, rows=5)
    assert result.get(timeout=10, interval=0.01) == 'body'
    chord_row = S.objects.get(task_class='celery.chord')
    header = S.objects.get(task_class='celery.group')
    body = S.objects.get(name='Sample body')
    assert chord_row.is_container and header.is_container and not body.is_container
    assert chord_row.parent is None and header.parent == chord_row and body.parent == chord_row
    assert (chord_row.name, chord_row.total_steps, header.total_steps) == ('Report', 6, 3)
    assert sorted(m.name for m in children(header)) == ['Sample h1', 'Sample h2']
    assert_container_sums(chord_row)
    assert_container_sums(header)
    assert S.objects.count() == 5
    assert_all_succeeded_once(stopped)


def test_chord_with_plain_body(protocol, worker, user, stopped):
    sig = chord([sample_task.si(user.pk, label='h1', steps=2), sample_task.si(user.pk, label='h2', steps=1)],
                plain_task.si())
    result = run_and_wait(sig, stopped, rows=4)
    assert result.get(timeout=10, interval=0.01) == 'plain'
    chord_row = S.objects.get(task_class='celery.chord')
    header = S.objects.get(task_class='celery.group')
    assert header.parent == chord_row
    assert chord_row.total_steps == 3 and header.total_steps == 3
    assert children(chord_row) == [header]  # the plain body gets no row
    assert S.objects.count() == 4
    assert_all_succeeded_once(stopped)


def test_chain_nested_in_group(protocol, worker, user, stopped):
    sig = group(chain(sample_task.si(user.pk, label='c1', steps=1), sample_task.si(user.pk, label='c2', steps=2)),
                sample_task.si(user.pk, label='g', steps=1))
    run_and_wait(sig, stopped, rows=5)
    grp = S.objects.get(task_class='celery.group')
    inner = S.objects.get(task_class='celery.chain')
    assert grp.parent is None and inner.parent == grp
    assert (grp.total_steps, inner.total_steps) == (4, 3)
    assert sorted(m.name for m in children(inner)) == ['Sample c1', 'Sample c2']
    assert [m.name for m in children(grp) if not m.is_container] == ['Sample g']
    assert_container_sums(grp)
    assert_container_sums(inner)
    assert S.objects.count() == 5
    assert_all_succeeded_once(stopped)


def test_group_member_failure_fails_container_once(worker, user, stopped):
    sig = group(failing_task.si(user.pk, message='nope'), sample_task.si(user.pk, label='ok'))
    run_and_wait(sig, stopped, rows=3)
    assert wait_until(lambda: len(stopped.calls) >= 3)
    container = S.objects.get(is_container=True)
    assert container.state == S.FAILED
    assert container.artifacts.get(name='Error').text == 'nope'
    assert S.objects.get(name='Sample ok').state == S.SUCCEEDED
    assert sorted(stopped.task_ids()) == sorted(S.objects.values_list('task_id', flat=True))


# -- at publish (nothing consumes the queue) ---------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_group_sized_up_front(protocol, user):
    group(sample_task.si(user.pk, steps=2), sample_task.si(user.pk, steps=5)).apply_async(queue=UNCONSUMED_QUEUE)
    container = S.objects.get(is_container=True)
    assert container.total_steps == 7 and container.state == S.PENDING
    assert S.objects.filter(parent=container).count() == 2


@pytest.mark.django_db(transaction=True)
def test_chain_recorded_from_its_first_message(protocol, user, published):
    chain(sample_task.si(user.pk, label='one'), sample_task.si(user.pk, label='two', steps=2)).apply_async(
        queue=UNCONSUMED_QUEUE)
    assert len(published.calls) == 1  # only the first step has been sent
    container = S.objects.get(is_container=True)
    assert (container.task_class, container.total_steps) == ('celery.chain', 3)
    assert sorted(m.name for m in children(container)) == ['Sample one', 'Sample two']


@pytest.mark.django_db(transaction=True)
def test_group_inside_atomic_block(protocol, user, published):
    with transaction.atomic():
        group(sample_task.si(user.pk), sample_task.si(user.pk)).apply_async(queue=UNCONSUMED_QUEUE)
        assert S.objects.filter(is_container=True).count() == 1
        assert S.objects.count() == 3
        assert published.calls == []
    assert len(published.calls) == 2


@pytest.mark.django_db(transaction=True)
def test_cancel_group_before_it_runs(user, stopped):
    group(sample_task.si(user.pk), sample_task.si(user.pk)).apply_async(queue=UNCONSUMED_QUEUE)
    container = S.objects.get(is_container=True)
    assert container.cancel() is True
    assert set(S.objects.values_list('state', flat=True)) == {S.CANCELED}
    assert sorted(stopped.task_ids()) == sorted(S.objects.values_list('task_id', flat=True))
    assert all(c['db_state'] == S.CANCELED for c in stopped.calls)


# -- eager ------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_eager_group_members_tracked(eager, user):
    result = group(sample_task.si(user.pk, label='x'), sample_task.si(user.pk, label='y')).apply_async()
    # The members' EagerResults (a GroupResult's own get() asks the result backend, which eager runs skip).
    assert sorted(member.get() for member in result.results) == ['x', 'y']
    members = S.objects.filter(is_container=False)
    assert sorted(m.name for m in members) == ['Sample x', 'Sample y']
    assert {m.state for m in members} == {S.SUCCEEDED}


@pytest.mark.django_db
def test_eager_chain_members_tracked(eager, user):
    result = chain(sample_task.si(user.pk, label='x'), sample_task.si(user.pk, label='y')).apply_async()
    assert result.get() == 'y'
    assert {m.state for m in S.objects.filter(is_container=False)} == {S.SUCCEEDED}
    assert S.objects.filter(is_container=False).count() == 2

"""The models: fields, ``__str__``, ``state_text`` and every status transition."""
import json
from unittest import mock

import pytest
from django.utils import translation

from user_tasks.exceptions import TaskCanceledException
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytestmark = pytest.mark.django_db

S = UserTaskStatus


def db(status):
    return UserTaskStatus.objects.get(pk=status.pk)


@pytest.fixture
def revoke():
    """Replace the Celery app the cancel path revokes through."""
    with mock.patch('user_tasks.signals.celery_app') as app:
        yield app.control.revoke


@pytest.fixture
def tree(make_status):
    """A chain container holding a group container holding two tasks, plus a task directly in the chain."""
    chain = make_status(task_class='celery.chain', is_container=True, total_steps=4, name='Chain')
    grp = make_status(task_class='celery.group', is_container=True, total_steps=3, parent=chain, name='Group')
    a = make_status(parent=grp, total_steps=1)
    b = make_status(parent=grp, total_steps=2)
    c = make_status(parent=chain, total_steps=1)
    # Walk the hierarchy through cached instances, as the transitions do.
    for child, parent in ((grp, chain), (a, grp), (b, grp), (c, chain)):
        child.parent = parent
    return {'chain': chain, 'group': grp, 'a': a, 'b': b, 'c': c}


# -- constants, __str__, state_text ---------------------------------------------------

def test_state_constants_have_exact_spellings():
    assert (S.PENDING, S.IN_PROGRESS, S.SUCCEEDED, S.FAILED, S.CANCELED, S.RETRYING) == (
        'Pending', 'In Progress', 'Succeeded', 'Failed', 'Canceled', 'Retrying')
    assert set(S.STATE_TRANSLATIONS) == {'Pending', 'In Progress', 'Succeeded', 'Failed', 'Canceled', 'Retrying'}
    assert S._meta.verbose_name_plural == 'user task statuses'


def test_defaults(make_status):
    status = make_status()
    assert status.state == S.PENDING
    assert (status.completed_steps, status.attempts, status.is_container) == (0, 1, False)
    assert status.uuid is not None and status.parent is None
    assert status.created is not None and status.modified is not None


@pytest.mark.parametrize('state', ['Pending', 'In Progress', 'Succeeded', 'Failed', 'Canceled', 'Retrying'])
def test_state_text_known_states(make_status, state):
    status = make_status(state=state)
    with translation.override('en'):
        assert str(status.state_text) == state
    assert status.state_text is S.STATE_TRANSLATIONS[state]


def test_state_text_custom_state(make_status):
    status = make_status(state='Exporting course')
    assert status.state_text == 'Exporting course'


def test_status_str(make_status):
    assert str(make_status(name='Export of course X')) == '<UserTaskStatus: Export of course X>'


def test_counters_hold_large_values(make_status):
    status = make_status(total_steps=2 ** 31 - 1, completed_steps=2 ** 31 - 2, attempts=2 ** 31 - 1)
    status.increment_completed_steps()
    assert db(status).completed_steps == 2 ** 31 - 1


class TestArtifactStr:

    @pytest.fixture
    def status(self, make_status):
        return make_status()

    def test_file(self, status):
        artifact = UserTaskArtifact(status=status, file='user_tasks/2024/01/01/out.tar.gz',
                                    url='https://example.com/x', text='ignored')
        assert str(artifact) == '<UserTaskArtifact: (Output) user_tasks/2024/01/01/out.tar.gz>'

    def test_url(self, status):
        artifact = UserTaskArtifact(status=status, name='BASE_URL', url='https://example.com/x', text='ignored')
        assert str(artifact) == '<UserTaskArtifact: (BASE_URL) https://example.com/x>'

    def test_short_text(self, status):
        artifact = UserTaskArtifact.objects.create(status=status, name='Error', text='Short message')
        assert str(artifact) == '<UserTaskArtifact: (Error) Short message>'

    def test_text_of_exactly_50_is_not_cut(self, status):
        text = 'x' * 50
        assert str(UserTaskArtifact(status=status, text=text)) == f'<UserTaskArtifact: (Output) {text}>'

    def test_long_text_cut_to_47_plus_ellipsis(self, status):
        text = ''.join(chr(ord('a') + i % 26) for i in range(51))
        assert str(UserTaskArtifact(status=status, text=text)) == f'<UserTaskArtifact: (Output) {text[:47]}...>'

    def test_defaults(self, status):
        artifact = UserTaskArtifact.objects.create(status=status)
        assert artifact.name == 'Output' and artifact.uuid is not None
        assert list(status.artifacts.all()) == [artifact]


# -- start --------------------------------------------------------------------------

class TestStart:

    def test_pending_becomes_in_progress(self, make_status):
        status = make_status()
        status.start()
        assert status.state == S.IN_PROGRESS
        row = db(status)
        assert row.state == S.IN_PROGRESS and row.started is not None

    def test_canceled_raises(self, make_status):
        status = make_status(state=S.CANCELED)
        with pytest.raises(TaskCanceledException):
            status.start()
        assert db(status).state == S.CANCELED

    def test_canceled_in_db_but_stale_in_memory_raises(self, make_status):
        status = make_status()
        S.objects.filter(pk=status.pk).update(state=S.CANCELED)
        with pytest.raises(TaskCanceledException):
            status.start()
        assert db(status).state == S.CANCELED

    def test_canceled_container_does_not_raise(self, make_status):
        container = make_status(task_class='celery.group', is_container=True, state=S.CANCELED)
        container.start()
        assert db(container).state == S.CANCELED

    def test_retrying_becomes_in_progress(self, make_status):
        status = make_status(state=S.RETRYING, attempts=2)
        status.start()
        assert db(status).state == S.IN_PROGRESS

    def test_final_state_untouched(self, make_status):
        status = make_status(state=S.SUCCEEDED)
        status.start()
        assert db(status).state == S.SUCCEEDED

    def test_waiting_parents_started_recursively(self, tree):
        S.objects.filter(pk=tree['chain'].pk).update(state=S.RETRYING)
        tree['chain'].state = S.RETRYING
        tree['a'].start()
        for key in ('a', 'group', 'chain'):
            assert db(tree[key]).state == S.IN_PROGRESS, key
            assert tree[key].state == S.IN_PROGRESS, key  # the cached instances see it
        assert db(tree['b']).state == S.PENDING

    @pytest.mark.parametrize('state', ['Exporting', S.IN_PROGRESS, S.SUCCEEDED, S.FAILED])
    def test_running_or_final_parent_untouched(self, tree, state):
        S.objects.filter(pk=tree['group'].pk).update(state=state)
        tree['group'].state = state
        tree['a'].start()
        assert db(tree['a']).state == S.IN_PROGRESS
        assert db(tree['group']).state == state
        assert db(tree['chain']).state == S.PENDING


# -- steps ----------------------------------------------------------------------------

class TestIncrementCompletedSteps:

    def test_self_and_every_ancestor(self, tree):
        tree['a'].increment_completed_steps()
        tree['b'].increment_completed_steps(2)
        assert tree['a'].completed_steps == 1 and db(tree['a']).completed_steps == 1
        assert tree['b'].completed_steps == 2 and db(tree['b']).completed_steps == 2
        assert tree['group'].completed_steps == 3 and db(tree['group']).completed_steps == 3
        assert tree['chain'].completed_steps == 3 and db(tree['chain']).completed_steps == 3

    def test_atomic_add_not_overwrite(self, make_status):
        status = make_status(total_steps=10)
        stale = db(status)
        status.increment_completed_steps(3)
        stale.increment_completed_steps(2)
        assert db(status).completed_steps == 5

    def test_canceled_raises(self, make_status):
        status = make_status(state=S.CANCELED, total_steps=5)
        with pytest.raises(TaskCanceledException):
            status.increment_completed_steps()

    def test_canceled_meanwhile_raises(self, tree):
        task = tree['a']
        task.start()
        db(task).cancel()  # another process (the REST API) cancels it
        with pytest.raises(TaskCanceledException):
            task.increment_completed_steps()
        assert task.state == S.CANCELED

    def test_canceled_meanwhile_counts_the_steps_then_raises_as_4_0(self, tree):
        """4.0: the n steps are counted (here and on every ancestor), then TaskCanceledException."""
        task = tree['b']
        task.start()
        task.increment_completed_steps()
        db(task).cancel()
        with pytest.raises(TaskCanceledException):
            task.increment_completed_steps()
        assert (task.completed_steps, db(task).completed_steps, task.state) == (2, 2, S.CANCELED)
        assert db(tree['group']).completed_steps == 2 and db(tree['chain']).completed_steps == 2
        assert tree['group'].completed_steps == 2

    def test_canceled_container_does_not_raise(self, make_status):
        container = make_status(task_class='celery.group', is_container=True, state=S.CANCELED, total_steps=3)
        container.increment_completed_steps(2)
        assert db(container).completed_steps == 2


def test_increment_total_steps_self_and_ancestors(tree):
    tree['a'].increment_total_steps(5)
    assert (tree['a'].total_steps, db(tree['a']).total_steps) == (6, 6)
    assert (tree['group'].total_steps, db(tree['group']).total_steps) == (8, 8)
    assert (tree['chain'].total_steps, db(tree['chain']).total_steps) == (9, 9)
    assert db(tree['b']).total_steps == 2 and db(tree['c']).total_steps == 1


def test_increment_total_steps_is_atomic(make_status):
    status = make_status(total_steps=1)
    stale = db(status)
    status.increment_total_steps(2)
    stale.increment_total_steps(3)
    assert db(status).total_steps == 6


# -- set_state / set_name ---------------------------------------------------------------

class TestSetState:

    def test_stores_custom_state(self, make_status):
        status = make_status(state=S.IN_PROGRESS)
        status.set_state('Exporting')
        assert status.state == 'Exporting' and db(status).state == 'Exporting'

    def test_canceled_raises(self, make_status):
        status = make_status(state=S.CANCELED)
        with pytest.raises(TaskCanceledException):
            status.set_state('Exporting')
        assert db(status).state == S.CANCELED

    def test_canceled_meanwhile_raises(self, make_status):
        status = make_status(state=S.IN_PROGRESS)
        S.objects.filter(pk=status.pk).update(state=S.CANCELED)
        with pytest.raises(TaskCanceledException):
            status.set_state('Exporting')
        assert db(status).state == S.CANCELED

    @pytest.mark.parametrize('container_class', ['celery.chain', 'celery.chord'])
    def test_propagates_to_chain_or_chord_parent(self, make_status, container_class):
        parent = make_status(task_class=container_class, is_container=True, state=S.IN_PROGRESS)
        child = make_status(parent=parent, state=S.IN_PROGRESS)
        child.parent = parent
        child.set_state('Compressing')
        assert db(parent).state == 'Compressing' and parent.state == 'Compressing'

    def test_propagates_through_nested_chains(self, make_status):
        outer = make_status(task_class='celery.chain', is_container=True, state=S.IN_PROGRESS)
        inner = make_status(task_class='celery.chain', is_container=True, state=S.IN_PROGRESS, parent=outer)
        child = make_status(parent=inner, state=S.IN_PROGRESS)
        inner.parent, child.parent = outer, inner
        child.set_state('Compressing')
        assert db(inner).state == 'Compressing' and db(outer).state == 'Compressing'

    def test_never_to_group_parent(self, tree):
        tree['group'].start()
        tree['a'].start()
        tree['a'].set_state('Exporting')
        assert db(tree['a']).state == 'Exporting'
        assert db(tree['group']).state == S.IN_PROGRESS
        assert db(tree['chain']).state == S.IN_PROGRESS

    def test_group_in_chain_propagates_to_chain_not_group(self, tree):
        tree['a'].start()
        tree['group'].set_state('Working')
        assert db(tree['chain']).state == 'Working'

    def test_final_row_not_moved(self, make_status):
        status = make_status(state=S.SUCCEEDED)
        status.set_state('Exporting')
        assert db(status).state == S.SUCCEEDED


def test_set_name_self_and_every_ancestor(tree):
    tree['a'].set_name('Renamed')
    for key in ('a', 'group', 'chain'):
        assert tree[key].name == 'Renamed' and db(tree[key]).name == 'Renamed', key
    assert db(tree['b']).name != 'Renamed'


# -- fail / retry / succeed ------------------------------------------------------------------

class TestFail:

    def test_error_artifact_and_failed(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(state=S.IN_PROGRESS)
        with django_capture_on_commit_callbacks(execute=True):
            assert status.fail('It broke') is True
        assert status.state == S.FAILED and db(status).state == S.FAILED
        assert [(a.name, a.text) for a in status.artifacts.all()] == [('Error', 'It broke')]
        assert [(c['sender'], c['status'], c['state'], c['db_state']) for c in stopped.calls] == [
            (UserTaskStatus, status, S.FAILED, S.FAILED)]

    def test_dict_message_stored_as_json(self, make_status):
        status = make_status(state=S.IN_PROGRESS)
        message = {'raw_error_msg': 'Bad OLX', 'line': 3}
        status.fail(message)
        text = status.artifacts.get(name='Error').text
        assert json.loads(text) == message

    def test_parent_fails_too(self, tree, stopped, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            tree['a'].fail('boom')
        for key in ('a', 'group', 'chain'):
            assert db(tree[key]).state == S.FAILED, key
            assert tree[key].state == S.FAILED, key
            assert db(tree[key]).artifacts.get(name='Error').text == 'boom'
        assert db(tree['b']).state == S.PENDING  # a group's other member still runs
        # c follows the group in the chain: Celery never runs it, so it ends Canceled (ADR 0013).
        assert db(tree['c']).state == S.CANCELED
        assert sorted(stopped.task_ids()) == sorted(tree[k].task_id for k in ('a', 'group', 'c', 'chain'))
        assert {call['task_id']: call['db_state'] for call in stopped.calls}[tree['c'].task_id] == S.CANCELED
        assert all(call['db_state'] == S.FAILED for call in stopped.calls if call['task_id'] != tree['c'].task_id)

    def test_final_row_left_alone(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(state=S.SUCCEEDED)
        with django_capture_on_commit_callbacks(execute=True):
            assert status.fail('late') is False
        assert db(status).state == S.SUCCEEDED
        assert not status.artifacts.exists()
        assert stopped.calls == []

    def test_twice_announces_once(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(state=S.IN_PROGRESS)
        with django_capture_on_commit_callbacks(execute=True):
            status.fail('one')
            db(status).fail('two')
        assert len(stopped.calls) == 1
        assert list(status.artifacts.values_list('text', flat=True)) == ['one']


class TestRetry:

    def test_attempts_and_state(self, make_status):
        status = make_status(state=S.IN_PROGRESS)
        status.retry()
        assert (status.state, status.attempts) == (S.RETRYING, 2)
        row = db(status)
        assert (row.state, row.attempts) == (S.RETRYING, 2)
        status.start()
        status.retry()
        assert db(status).attempts == 3

    def test_parent_untouched(self, tree):
        tree['a'].start()
        tree['a'].retry()
        assert db(tree['group']).state == S.IN_PROGRESS
        assert db(tree['group']).attempts == 1


class TestSucceed:

    def test_steps_raised_to_total(self, make_status, stopped, django_capture_on_commit_callbacks):
        status = make_status(state=S.IN_PROGRESS, total_steps=5, completed_steps=2)
        with django_capture_on_commit_callbacks(execute=True):
            assert status.succeed() is True
        row = db(status)
        assert (row.state, row.completed_steps, status.completed_steps) == (S.SUCCEEDED, 5, 5)
        assert row.finished is not None
        assert [(c['sender'], c['status'], c['db_state']) for c in stopped.calls] == [
            (UserTaskStatus, status, S.SUCCEEDED)]

    def test_parent_succeeds_when_all_children_have(self, tree, stopped, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            tree['a'].start()
            tree['a'].succeed()
            assert db(tree['group']).state == S.IN_PROGRESS
            tree['b'].start()
            tree['b'].succeed()
            group_row = db(tree['group'])
            assert (group_row.state, group_row.completed_steps) == (S.SUCCEEDED, 3)
            assert tree['group'].state == S.SUCCEEDED  # seen through the cached parent
            assert db(tree['chain']).state == S.IN_PROGRESS  # c has not run
            tree['c'].start()
            tree['c'].succeed()
        chain_row = db(tree['chain'])
        assert (chain_row.state, chain_row.completed_steps, chain_row.total_steps) == (S.SUCCEEDED, 4, 4)
        assert sorted(stopped.task_ids()) == sorted(t.task_id for t in tree.values())
        assert all(call['db_state'] == S.SUCCEEDED for call in stopped.calls)

    def test_parent_not_succeeded_while_a_child_failed(self, make_status):
        parent = make_status(task_class='celery.group', is_container=True, total_steps=2)
        a, b = make_status(parent=parent), make_status(parent=parent)
        a.parent = b.parent = parent
        S.objects.filter(pk=a.pk).update(state=S.FAILED)
        b.succeed()
        assert db(parent).state == S.PENDING

    def test_completed_steps_added_to_parents(self, tree):
        tree['b'].succeed()
        assert db(tree['group']).completed_steps == 2
        assert db(tree['chain']).completed_steps == 2

    @pytest.mark.parametrize('state', [S.CANCELED, S.FAILED, S.RETRYING])
    def test_not_from_canceled_failed_or_retrying(self, make_status, state):
        status = make_status(state=state)
        assert status.succeed() is False
        assert db(status).state == state

    def test_twice_counts_once(self, tree, stopped, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            tree['b'].succeed()
            db(tree['b']).succeed()
        assert db(tree['group']).completed_steps == 2
        assert len(stopped.for_task(tree['b'].task_id)) == 1


# -- cancel -----------------------------------------------------------------------------

class TestCancel:

    @pytest.mark.parametrize('state', [S.PENDING, S.RETRYING])
    def test_waiting_task_revoked_and_canceled(self, make_status, revoke, stopped, state,
                                               django_capture_on_commit_callbacks):
        status = make_status(state=state)
        with django_capture_on_commit_callbacks(execute=True):
            assert status.cancel() is True
        revoke.assert_called_once_with(status.task_id)
        assert status.state == S.CANCELED and db(status).state == S.CANCELED
        assert len(stopped.calls) == 1
        call = stopped.calls[0]
        assert call['sender'] is UserTaskStatus and call['status'] is status
        assert call['state'] == S.CANCELED and call['db_state'] == S.CANCELED

    def test_in_progress_becomes_canceled_and_stops_later(self, make_status, revoke, stopped,
                                                          django_capture_on_commit_callbacks):
        status = make_status()
        status.start()
        with django_capture_on_commit_callbacks(execute=True):
            assert db(status).cancel() is True
        assert db(status).state == S.CANCELED
        assert stopped.calls == []  # still running: announced when it stops
        with pytest.raises(TaskCanceledException):
            status.increment_completed_steps()
        with django_capture_on_commit_callbacks(execute=True):
            assert status.mark_stopped() is True
            assert status.mark_stopped() is False
        assert [c['db_state'] for c in stopped.calls] == [S.CANCELED]

    def test_custom_in_progress_state_becomes_canceled(self, make_status, revoke):
        status = make_status(state='Exporting')
        assert status.cancel() is True
        assert db(status).state == S.CANCELED
        revoke.assert_not_called()

    @pytest.mark.parametrize('state', [S.SUCCEEDED, S.FAILED, S.CANCELED])
    def test_final_task_left_alone(self, make_status, revoke, stopped, state, django_capture_on_commit_callbacks):
        status = make_status(state=state)
        with django_capture_on_commit_callbacks(execute=True):
            assert status.cancel() is False
        assert db(status).state == state
        assert stopped.calls == []

    def test_container_cancels_children(self, tree, revoke, stopped, django_capture_on_commit_callbacks):
        S.objects.filter(pk=tree['c'].pk).update(state=S.SUCCEEDED)
        with django_capture_on_commit_callbacks(execute=True):
            assert tree['chain'].cancel() is True
        for key in ('chain', 'group', 'a', 'b'):
            assert db(tree[key]).state == S.CANCELED, key
        assert db(tree['c']).state == S.SUCCEEDED
        assert sorted(stopped.task_ids()) == sorted(tree[k].task_id for k in ('chain', 'group', 'a', 'b'))
        assert all(call['db_state'] == S.CANCELED for call in stopped.calls)
        assert sorted(c.args[0] for c in revoke.call_args_list) == sorted([tree['a'].task_id, tree['b'].task_id])


# -- a container whose member is canceled on its own (ADR 0013) -----------------------------

class TestContainerOfACanceledMember:

    @pytest.fixture
    def group_of(self, make_status):
        def build(n, task_class='celery.group'):
            container = make_status(task_class=task_class, is_container=True, total_steps=n, name='Canvas')
            members = [make_status(parent=container) for _ in range(n)]
            for member in members:
                member.parent = container
            return container, members
        return build

    def test_group_ends_canceled_once_the_other_members_end(self, group_of, revoke, stopped):
        group, (a, b) = group_of(2)
        assert db(a).cancel() is True
        assert db(group).state == S.PENDING  # b has not ended
        b.start()
        b.succeed()
        row = db(group)
        assert (row.state, row.completed_steps, row.total_steps) == (S.CANCELED, 1, 2)
        assert row.finished is not None
        assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [
            (a.task_id, S.CANCELED), (b.task_id, S.SUCCEEDED), (group.task_id, S.CANCELED)]

    def test_group_ends_canceled_when_its_last_member_is_canceled(self, group_of, revoke, stopped):
        group, (a, b) = group_of(2)
        a.start()
        a.succeed()
        assert b.cancel() is True
        assert b.parent.state == S.CANCELED  # seen through the cached parent
        assert db(group).state == S.CANCELED
        assert stopped.task_ids() == [a.task_id, b.task_id, group.task_id]

    def test_member_canceled_while_running_ends_the_group_when_it_stops(self, group_of, revoke, stopped):
        group, (a, b) = group_of(2)
        a.start()
        assert db(a).cancel() is True  # running: Canceled, its work not stopped yet
        b.start()
        b.succeed()
        assert db(group).state == S.IN_PROGRESS and db(group).finished is None
        with pytest.raises(TaskCanceledException):
            a.increment_completed_steps()
        assert a.mark_stopped() is True
        assert db(group).state == S.CANCELED
        assert [(c['task_id'], c['db_state']) for c in stopped.calls] == [
            (b.task_id, S.SUCCEEDED), (a.task_id, S.CANCELED), (group.task_id, S.CANCELED)]

    def test_all_succeeded_still_succeeds_and_a_failure_still_fails(self, group_of):
        group, members = group_of(2)
        for member in members:
            member.start()
            member.succeed()
        assert (db(group).state, db(group).completed_steps) == (S.SUCCEEDED, 2)
        group, (a, b) = group_of(2)
        a.fail('broke')
        b.start()
        b.succeed()
        assert db(group).state == S.FAILED
        assert list(db(group).artifacts.values_list('text', flat=True)) == ['broke']

    @pytest.mark.parametrize('kind', ['celery.group', 'celery.chain'])
    def test_ends_when_its_children_have_whatever_its_steps(self, group_of, stopped, kind):
        """SPEC A4: the parent succeeds when all its children have (a container sized by hand, a member deleted)."""
        container, (a, b) = group_of(2, kind)
        S.objects.filter(pk=container.pk).update(total_steps=10)
        container.total_steps = 10
        for member in (a, b):
            member.start()
            member.succeed()
        assert (db(container).state, db(container).completed_steps) == (S.SUCCEEDED, 10)
        assert container.state == S.SUCCEEDED  # through the cached parent
        assert stopped.task_ids().count(container.task_id) == 1

    def test_ends_once(self, group_of, revoke, stopped):
        group, (a, b) = group_of(2)
        a.cancel()
        b.cancel()
        assert db(group).end_if_children_ended() is False
        assert stopped.task_ids().count(group.task_id) == 1

    def test_chain_member_canceled_cancels_the_later_members(self, group_of, revoke, stopped):
        chain, (a, b, c) = group_of(3, 'celery.chain')
        assert db(b).cancel() is True
        assert [db(m).state for m in (a, b, c)] == [S.PENDING, S.CANCELED, S.CANCELED]
        assert db(chain).state == S.PENDING  # a has not ended
        assert sorted(call.args[0] for call in revoke.call_args_list) == sorted([b.task_id, c.task_id])
        assert db(a).cancel() is True
        assert db(chain).state == S.CANCELED
        assert sorted(stopped.task_ids()) == sorted(t.task_id for t in (chain, a, b, c))
        assert not UserTaskArtifact.objects.exists()  # no "message lost" failure later

    def test_chain_member_canceled_while_running(self, group_of, revoke, stopped):
        chain, (a, b) = group_of(2, 'celery.chain')
        a.start()
        assert db(a).cancel() is True
        assert db(b).state == S.CANCELED and db(b).finished is not None  # it would never run
        assert db(chain).state == S.IN_PROGRESS
        assert db(a).mark_stopped() is True
        assert db(chain).state == S.CANCELED
        assert stopped.task_ids() == [b.task_id, a.task_id, chain.task_id]

    @pytest.fixture
    def chord_rows(self, make_status):
        """A chord: a header group of two members and a body, linked through cached parents."""
        chord = make_status(task_class='celery.chord', is_container=True, total_steps=3)
        body = make_status(parent=chord)
        header = make_status(task_class='celery.group', is_container=True, total_steps=2, parent=chord)
        h1, h2 = make_status(parent=header), make_status(parent=header)
        header.parent = chord
        for member in (h1, h2):
            member.parent = header
        return chord, body, header, h1, h2

    def test_canceled_chord_header_cancels_the_body(self, chord_rows, revoke, stopped):
        chord, body, header, h1, h2 = chord_rows
        h1.cancel()
        assert db(body).state == S.PENDING
        h2.start()
        h2.succeed()
        assert [db(row).state for row in (header, body, chord)] == [S.CANCELED, S.CANCELED, S.CANCELED]
        assert stopped.task_ids() == [h1.task_id, h2.task_id, header.task_id, body.task_id, chord.task_id]

    def test_failed_chain_member_cancels_the_later_members(self, group_of, revoke, stopped):
        chain, (a, b, c) = group_of(3, 'celery.chain')
        a.start()
        a.succeed()
        b.start()
        assert b.fail('broke') is True
        assert [db(m).state for m in (a, b, c)] == [S.SUCCEEDED, S.FAILED, S.CANCELED]
        assert db(c).finished is not None  # it never runs: no "message lost" failure later
        assert db(chain).state == S.FAILED
        assert revoke.call_args_list[-1].args[0] == c.task_id
        assert stopped.task_ids() == [a.task_id, b.task_id, chain.task_id, c.task_id]
        assert list(UserTaskArtifact.objects.values_list('status__task_id', 'text').order_by('id')) == [
            (b.task_id, 'broke'), (chain.task_id, 'broke')]

    def test_failed_chord_header_cancels_the_body(self, chord_rows, revoke, stopped):
        chord, body, header, h1, h2 = chord_rows
        h1.start()
        h1.fail('broke')
        assert [db(row).state for row in (h1, header, body, chord)] == [S.FAILED, S.FAILED, S.CANCELED, S.FAILED]
        assert db(h2).state == S.PENDING  # a member of the same group still runs (Celery sends it)
        assert stopped.task_ids() == [h1.task_id, header.task_id, chord.task_id, body.task_id]

    def test_a_cascade_that_breaks_leaves_the_chain_failed(self, group_of, revoke, monkeypatch):
        chain, (a, b) = group_of(2, 'celery.chain')
        a.start()
        monkeypatch.setattr(S, '_cancel', mock.Mock(side_effect=RuntimeError('database gone')))
        with pytest.raises(RuntimeError):
            a.fail('broke')
        assert (db(a).state, db(chain).state) == (S.FAILED, S.FAILED)

    def test_group_in_a_chain(self, tree, revoke, stopped):
        tree['a'].cancel()
        tree['b'].start()
        tree['b'].succeed()
        # The group ended Canceled; c, after it in the chain, never runs; the chain ends.
        assert [db(tree[k]).state for k in ('group', 'c', 'chain')] == [S.CANCELED] * 3
        assert len(stopped.calls) == 5 and all(stopped.for_task(t.task_id) for t in tree.values())

    def test_container_cancel_still_returns_true_once(self, group_of, revoke, stopped):
        group, members = group_of(2)
        assert group.cancel() is True  # its children's cancels leave its end to it
        assert group.cancel() is False
        assert stopped.task_ids().count(group.task_id) == 1


# -- texts longer than their columns ----------------------------------------------------

class TestLongTexts:
    """Cut to the column, ending with an ellipsis (PostgreSQL and MariaDB refuse longer values)."""

    def test_column_lengths(self):
        from user_tasks import localized
        assert localized.NAME_MAX_LENGTH == S._meta.get_field('name').max_length
        assert localized.STATE_MAX_LENGTH == S._meta.get_field('state').max_length

    def test_set_name_cuts_self_and_ancestors(self, tree):
        tree['a'].set_name('n' * 300)
        for key in ('a', 'group', 'chain'):
            name = db(tree[key]).name
            assert (len(name), name[-1], name[:-1]) == (255, '\u2026', 'n' * 254), key
        assert tree['chain'].name == db(tree['chain']).name
        tree['a'].set_name('n' * 255)  # fits: left as it is
        assert db(tree['a']).name == 'n' * 255

    def test_set_state_cuts_the_stored_stage(self, make_status):
        status = make_status(state=S.IN_PROGRESS)
        status.set_state('s' * 200)
        assert db(status).state == status.state == 's' * 127 + '\u2026'
        status.set_state('Copying %(name)s', name='f' * 200)
        row = db(status)
        assert row.state == ('Copying ' + 'f' * 200)[:127] + '\u2026'
        assert row.state_text == 'Copying ' + 'f' * 200  # rendered whole from its message and parameters
        status.set_state('s' * 128)
        assert db(status).state == 's' * 128

    def test_publish_cuts_generated_and_container_names(self, user, celery_app):
        from celery import group

        from tests.conftest import UNCONSUMED_QUEUE
        from tests.tasks import long_named_task
        result = long_named_task.apply_async((user.pk,), {'filename': 'f' * 300}, queue=UNCONSUMED_QUEUE)
        assert db(S.objects.get(task_id=result.id)).name == ('Import of course-v1:edX+Demo+2026 from '
                                                             + 'f' * 300)[:254] + '\u2026'
        group(long_named_task.si(user.pk, user_task_name='g' * 300),
              long_named_task.si(user.pk)).apply_async(queue=UNCONSUMED_QUEUE)
        assert S.objects.get(task_class='celery.group').name == 'g' * 254 + '\u2026'

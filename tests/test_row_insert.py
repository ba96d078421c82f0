"""
``user_tasks.row_insert``: a new row written as ``save(force_insert=True)`` writes it, from SQL built once.

The PostgreSQL and MariaDB runs of the same behaviour are the integration suite's publishes
(every row a worker runs was written here); these tests compare it with Django's own save.
"""
import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from user_tasks import row_insert
from user_tasks.models import UserTaskStatus

pytestmark = pytest.mark.django_db(transaction=True)

_COMPARED = [field.attname for field in UserTaskStatus._meta.concrete_fields
             if field.attname not in ('id', 'uuid', 'task_id', 'created', 'modified')]


def _row(user, task_id, **fields):
    return UserTaskStatus(task_id=task_id, task_class='tests.tasks.sample_task', name='Export',
                          total_steps=3, user_id=user.pk, **fields)


def _stored(task_id):
    return UserTaskStatus.objects.values().get(task_id=task_id)


def test_the_row_is_what_save_writes(user):
    by_save = _row(user, 'by-save')
    by_save.save(force_insert=True)
    inserted = _row(user, 'by-insert')
    row_insert.insert(inserted, 'default')

    saved, written = _stored('by-save'), _stored('by-insert')
    assert {name: written[name] for name in _COMPARED} == {name: saved[name] for name in _COMPARED}
    assert written['id'] == inserted.pk and written['uuid'] == inserted.uuid
    # model_utils' timestamps: created and modified set, and equal, on a new row.
    assert written['created'] == written['modified'] == inserted.created == inserted.modified
    assert inserted._state.adding is False and inserted._state.db == 'default'


def test_one_statement_whose_text_is_reused(user):
    row_insert.insert(_row(user, 'first'), 'default')
    with CaptureQueriesContext(connection) as first:
        row_insert.insert(_row(user, 'second'), 'default')
    with CaptureQueriesContext(connection) as second:
        row_insert.insert(_row(user, 'third', state='Custom', attempts=4), 'default')
    assert len(first) == len(second) == 1
    assert first[0]['sql'].startswith('INSERT INTO')
    assert _stored('third')['state'] == 'Custom' and _stored('third')['attempts'] == 4


def test_a_timestamp_given_by_the_caller_is_kept(user):
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    row_insert.insert(_row(user, 'dated', created=when, modified=when), 'default')
    assert _stored('dated')['created'] == when


def test_save_signals_are_sent_to_receivers(user):
    seen = []

    def before(sender, instance, raw, using, update_fields, **kwargs):
        seen.append(('pre', instance.pk, raw, using, update_fields))
        instance.name = 'Renamed by a pre_save receiver'

    def after(sender, instance, created, raw, using, update_fields, **kwargs):
        seen.append(('post', instance.pk, created, raw, using, update_fields))

    pre_save.connect(before, sender=UserTaskStatus, dispatch_uid='tests.row_insert.pre')
    post_save.connect(after, sender=UserTaskStatus, dispatch_uid='tests.row_insert.post')
    try:
        row = _row(user, 'signalled')
        row_insert.insert(row, 'default')
    finally:
        pre_save.disconnect(dispatch_uid='tests.row_insert.pre')
        post_save.disconnect(dispatch_uid='tests.row_insert.post')
    assert seen == [('pre', None, False, 'default', None), ('post', row.pk, True, False, 'default', None)]
    assert _stored('signalled')['name'] == 'Renamed by a pre_save receiver'


def test_an_unsaved_parent_is_refused_as_save_refuses_it(user):
    parent = _row(user, 'unsaved-parent', is_container=True)
    child = _row(user, 'child')
    child.parent = parent
    with pytest.raises(ValueError, match='unsaved related object'):
        row_insert.insert(child, 'default')
    assert not UserTaskStatus.objects.exists()


def test_a_parent_saved_after_assignment_is_linked(user):
    parent = _row(user, 'late-parent', is_container=True)
    child = _row(user, 'late-child')
    child.parent = parent
    row_insert.insert(parent, 'default')
    row_insert.insert(child, 'default')
    assert _stored('late-child')['parent_id'] == parent.pk


def test_a_duplicate_raises_and_marks_the_transaction_for_rollback(user):
    row_insert.insert(_row(user, 'duplicate'), 'default')
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            row_insert.insert(_row(user, 'duplicate'), 'default')
        assert transaction.get_rollback()
    assert UserTaskStatus.objects.filter(task_id='duplicate').count() == 1


def test_an_expression_as_a_value_goes_through_save(user):
    from django.db.models import Value
    from django.db.models.functions import Upper
    row = _row(user, 'with-expression')
    row.name = Upper(Value('export'))
    row_insert.insert(row, 'default')
    assert _stored('with-expression')['name'] == 'EXPORT'


def test_a_row_with_its_primary_key_set_goes_through_save(user):
    row = _row(user, 'with-pk')
    row.pk = 4242
    row_insert.insert(row, 'default')
    assert _stored('with-pk')['id'] == 4242

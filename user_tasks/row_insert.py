"""
The INSERT of one new row, as ``Model.save(force_insert=True)`` writes it, with its SQL built once.

A publish writes one status row.  Django builds and compiles its INSERT anew on every save,
and that cost as much of the publisher's CPU as waiting for the statement itself
(``docs/performance.rst``).  The statement's text depends only on the model and the
database backend, so it is built once per (model, backend) and reused.  Everything else a
save does for a new row is kept: each field's ``pre_save`` (model_utils' timestamps, the
uuid default) and ``get_db_prep_save``, the related-object check, ``pre_save`` and
``post_save`` for any receiver, marking the caller's transaction for rollback when the
statement fails, and the instance's ``_state``.

Rows Django would write differently (a primary key already set, an expression as a value,
fields with a database default, a generated field or a custom placeholder, a model ordered
with respect to another) go through ``save`` as before.

Layer: leaves.  Imports only Django.
"""
from django.db import connections, transaction
from django.db.models.signals import post_save, pre_save

#: (model, vendor, returns columns) -> (fields, sql, returning params), or None for "use save()".
_statements = {}


def insert(instance, using):
    """
    Insert ``instance`` (unsaved) through ``using`` and set its primary key, as ``save(force_insert=True)``.

    Raises what the database raises (``IntegrityError`` for a duplicate or a missing user).
    """
    model = type(instance)
    connection = connections[using]
    statement = _statement(model, connection)
    if statement is None or instance.pk is not None or _has_expression(instance, statement[0]):
        instance.save(force_insert=True, using=using)
        return
    fields, sql, returning_params = statement
    instance._prepare_related_fields_for_save(operation_name='save')  # noqa: SLF001  what save() checks
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=None)
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    meta = model._meta
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning_params is not None:
            pk = connection.ops.fetch_returned_insert_columns(cursor, returning_params)[0]
        else:
            pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    instance.pk = pk
    instance._state.adding = False  # noqa: SLF001  Django's own bookkeeping, as save() leaves it
    instance._state.db = using  # noqa: SLF001
    post_save.send(sender=model, instance=instance, created=True, update_fields=None, raw=False, using=using)


def _has_expression(instance, fields):
    """Whether a field holds an expression (``F()``, a function), which the ORM compiles into the statement."""
    return any(hasattr(instance.__dict__.get(field.attname), 'resolve_expression') for field in fields)


def _statement(model, connection):
    """The cached (fields, INSERT statement, returning params) of ``model`` on ``connection``'s backend."""
    # MySQL and MariaDB share a vendor; only MariaDB 10.5+ returns columns from an INSERT.
    key = (model, connection.vendor, connection.features.can_return_columns_from_insert)
    if key not in _statements:
        _statements[key] = _build(model, connection)
    return _statements[key]


def _build(model, connection):
    meta = model._meta
    if meta.auto_field is None or meta.order_with_respect_to or list(meta.db_returning_fields) != [meta.pk]:
        return None
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    if any(getattr(field, 'generated', False) or hasattr(field, 'get_placeholder') for field in fields):
        return None
    quote = connection.ops.quote_name
    sql = 'INSERT INTO {} ({}) VALUES ({})'.format(
        quote(meta.db_table), ', '.join(quote(field.column) for field in fields), ', '.join(['%s'] * len(fields)))
    returning_params = None
    if connection.features.can_return_columns_from_insert:
        returning_sql, returning_params = connection.ops.return_insert_columns([meta.pk])
        if returning_sql:
            sql = f'{sql} {returning_sql}'
        else:
            returning_params = None
    return fields, sql, returning_params

"""
The hand-written statements of the status transitions a worker runs for every task.

Django's ORM builds and compiles a query on every call, and for the statements below that
cost more CPU than the rest of their transition (``docs/performance.rst``); some of them
also read and write in one statement (``UPDATE ... RETURNING``), which the ORM cannot
express.  Each function takes the model, the connection to run on and plain values, runs
one statement (two where MariaDB lacks ``UPDATE ... RETURNING``) and returns what the
transition needs.  The transitions themselves, their conditions' meaning and their events
stay in ``user_tasks.models``; every statement here is one conditional UPDATE (ADR 0002).

Layer: leaves.  Imports only Django; the model is passed in.
"""
from django.db.models.sql import query as sql_query

#: Where a connection keeps the start's statements: {(model, with_attempt): (sql, converters, attnames)}.
_START_STATEMENTS = '_user_tasks_start_statements'


def can_update_returning(connection):
    """Whether ``connection`` supports ``UPDATE ... RETURNING`` (MariaDB 10.11 does not)."""
    if connection.vendor == 'postgresql':
        return True
    if connection.vendor == 'sqlite':
        return connection.Database.sqlite_version_info >= (3, 35)
    return False


def start(model, connection, task_id, now, attempt):
    """
    Start the row of ``task_id`` unless it has ended, and return it (a list of 0 or 1 instances).

    One ``UPDATE ... RETURNING`` of every column; the caller checks ``can_update_returning``.
    ``attempt`` (or None) raises ``attempts`` to at least that number.
    """
    db_now = model._meta.get_field('started').get_db_prep_value(now, connection)
    sql, converters, names = _start_statement(model, connection, with_attempt=attempt is not None)
    params = [model.IN_PROGRESS, db_now, db_now, db_now]
    if attempt is not None:
        params.append(int(attempt))
    params += [task_id, *model.FINAL_STATES]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    # What ``raw()`` does, without its per-call set-up: the backend's and the fields'
    # converters (aware datetimes, UUIDs, booleans), then ``from_db``.
    if converters:
        rows = converters[0].apply_converters(rows, converters[1])
    return [model.from_db(connection.alias, names, list(values)) for values in rows]


def _start_statement(model, connection, with_attempt):
    """
    The start's ``UPDATE ... RETURNING`` on ``connection``, with its column converters, built once.

    Kept on the connection object, whose backend the converters are bound to and which they
    live and die with (a green thread's connection included).
    """
    cached = connection.__dict__.setdefault(_START_STATEMENTS, {})
    key = (model, with_attempt)
    if key not in cached:
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        fields = model._meta.concrete_fields
        attempts = ''
        if with_attempt:
            greatest = 'GREATEST' if connection.vendor == 'postgresql' else 'MAX'
            attempts = f', attempts = {greatest}(attempts, %s)'
        sql = (
            f'UPDATE {table} SET state = %s, started = %s, heartbeat = %s, modified = %s{attempts} '
            f"WHERE task_id = %s AND state NOT IN (%s, %s, %s) RETURNING {', '.join(quote(f.column) for f in fields)}"
        )
        compiler = connection.ops.compiler('SQLCompiler')(sql_query.Query(model), connection, connection.alias)
        converters = compiler.get_converters([field.get_col(model._meta.db_table) for field in fields])
        cached[key] = (sql, (compiler, converters) if converters else None, [field.attname for field in fields])
    return cached[key]


def add_steps(model, connection, pk, steps, now):
    """Count ``steps`` done on row ``pk`` and touch its heartbeat; return its state (None: no such row)."""
    quote = connection.ops.quote_name
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    db_now = model._meta.get_field('modified').get_db_prep_value(now, connection)
    sql = f'UPDATE {table} SET completed_steps = completed_steps + %s, modified = %s, heartbeat = %s WHERE {key} = %s'
    params = [int(steps), db_now, db_now, pk]
    with connection.cursor() as cursor:
        if can_update_returning(connection):
            cursor.execute(f'{sql} RETURNING state', params)
            row = cursor.fetchone()
            return row[0] if row else None
        cursor.execute(sql, params)
        if not cursor.rowcount:
            return None
        cursor.execute(f'SELECT state FROM {table} WHERE {key} = %s', [pk])
        row = cursor.fetchone()
        return row[0] if row else None


def succeed(model, connection, pk, now):
    """
    End row ``pk`` Succeeded with every step done, unless it ended or is Retrying; return the row count.

    A success has nothing to try again: the stored arguments are cleared in the same UPDATE.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    db_now = model._meta.get_field('finished').get_db_prep_value(now, connection)
    sql = (f'UPDATE {table} SET state = %s, finished = %s, modified = %s, completed_steps = total_steps, '
           f'concurrency_key = NULL, arguments = NULL '
           f'WHERE id = %s AND state NOT IN (%s, %s, %s, %s) AND finished IS NULL')
    with connection.cursor() as cursor:
        cursor.execute(sql, [model.SUCCEEDED, db_now, db_now, pk, *model.FINAL_STATES, model.RETRYING])
        return cursor.rowcount


def end_container(model, connection, pk, now):
    """
    End container ``pk`` if every child has ended; return its new state, or None.

    Succeeded (steps raised to the total) when every child succeeded, else Canceled (ADR
    0013).  One statement where the database has ``UPDATE ... RETURNING``; MariaDB reads
    the state it wrote in a second one, only when the row moved.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    db_now = model._meta.get_field('finished').get_db_prep_value(now, connection)

    def count(alias_name, condition):
        # The counts sit in derived tables: MySQL refuses an UPDATE whose subquery reads the
        # same table (error 1093), and the aggregate stops its optimizer merging it back.
        return (f'(SELECT n FROM (SELECT COUNT(*) AS n FROM {table} WHERE parent_id = %s AND {condition}) '
                f'AS {alias_name})')
    sql = (
        f"UPDATE {table} SET state = CASE WHEN 0 = {count('unsucceeded', 'state <> %s')} THEN %s ELSE %s END, "
        f"completed_steps = CASE WHEN 0 = {count('unsucceeded_steps', 'state <> %s')} "
        f'THEN total_steps ELSE completed_steps END, '
        f'finished = %s, modified = %s, concurrency_key = NULL '
        f'WHERE id = %s AND finished IS NULL AND state NOT IN (%s, %s, %s) '
        f"AND 0 = {count('unended', 'state <> %s AND (state <> %s OR finished IS NULL)')}"
    )
    succeeded, canceled = model.SUCCEEDED, model.CANCELED
    params = [pk, succeeded, succeeded, canceled, pk, succeeded, db_now, db_now,
              pk, *model.FINAL_STATES, pk, succeeded, canceled]
    returning = can_update_returning(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql + (' RETURNING state' if returning else ''), params)
        if returning:
            row = cursor.fetchone()
            return row[0] if row else None
        if not cursor.rowcount:
            return None
        cursor.execute(f'SELECT state FROM {table} WHERE id = %s', [pk])
        return cursor.fetchone()[0]

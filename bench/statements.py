"""
SQL statements per operation of a user task, on PostgreSQL and MariaDB (one JSON line).

Counted with Django's ``CaptureQueriesContext`` around:

- ``publish``: ``noop_task.apply_async`` outside a transaction, to a real Redis broker (on
  PostgreSQL the INSERT carries ``SET LOCAL synchronous_commit TO off`` in front of it);
- ``run``: the published task run through Celery's tracer (``apply`` with its task id:
  ``task_prerun`` starting the row and loading it, the body, ``task_success`` ending it
  and sending ``user_task_stopped`` with the row).  Expected: 2 on PostgreSQL (one
  ``UPDATE ... RETURNING`` starts and loads the row), 3 on MariaDB, which has no
  ``UPDATE ... RETURNING`` (a SELECT, then the start's UPDATE);
- ``step``: ``increment_completed_steps()`` on a running task without a parent, and the
  same on a task canceled meanwhile (it counts the step, then raises, as 4.0);
- ``run_worker``: the same run as a worker makes it (prerun, body, success and postrun
  receivers, not eager), counted on both connections: the model's own (``default``, none
  expected) and the status connection.  PostgreSQL: the start's ``UPDATE ... RETURNING``
  (committed without waiting for the disk), then the success's UPDATE, sent behind
  ``SET LOCAL synchronous_commit TO on`` in the same query string (a durable commit, no
  other round trip); MariaDB: the read of the row, the start, the success;
- ``group10``: publishing a group of 10 no-op UserTasks (BEGIN, the container's INSERT, one
  bulk INSERT of the ten members, COMMIT).

Each database is measured in its own subprocess (``--db``), with its own database, Redis
database and queue.  Usage: ``.venv/bin/python bench/statements.py [--verbose]``.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = 'statements'
TARGETS = {'publish': 1, 'run': 3, 'step': 1, 'group10': 4}
UPSTREAM = {'publish': 3, 'run': 7, 'step': 3, 'group10': 61}
#: Exact counts expected per database (MariaDB lacks UPDATE ... RETURNING: one more to run).
EXPECTED = {
    # step_canceled: the steps are counted and the state read back in one UPDATE ... RETURNING (ADR 0002).
    'postgres': {'publish': 1, 'run': 2, 'run_worker': 2, 'run_worker_default': 0, 'step': 1, 'step_canceled': 1,
                 'group10': 4},
    # run: SELECT, UPDATE, UPDATE, plus the SET SESSION of the connection prerun reopens.
    # run_worker: the SELECT that loads the row, the start, the success (on the status connection).
    # step: the UPDATE, then the read of the state (no UPDATE ... RETURNING).
    'mariadb': {'publish': 1, 'run': 4, 'run_worker': 3, 'run_worker_default': 0, 'step': 2, 'step_canceled': 2,
                'group10': 4},
}


def _measure(db, verbose):
    common.configure(BENCH, db=db, broker=True)
    from celery import group
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.celery import app
    from tests.tasks import noop_task
    from user_tasks.exceptions import TaskCanceledException
    from user_tasks.models import UserTaskStatus

    user = get_user_model().objects.create_user('bench', 'bench@example.com')
    stopped = []
    from user_tasks import user_task_stopped
    user_task_stopped.connect(lambda sender, status, **kw: stopped.append(status.state), weak=False)
    sql = {}

    def count(name, function):
        with CaptureQueriesContext(connection) as queries:
            result = function()
        sql[name] = [q['sql'] for q in queries.captured_queries]
        return len(queries), result

    # Warm up: the first publish opens the broker connection and fills Django's caches.
    noop_task.apply_async((user.pk,))
    group(noop_task.si(user.pk) for _ in range(10)).apply_async()
    noop_task.apply(args=(user.pk,), task_id=noop_task.apply_async((user.pk,)).id)

    publish, result = count('publish', lambda: noop_task.apply_async((user.pk,)))
    run, _ = count('run', lambda: noop_task.apply(args=(user.pk,), task_id=result.id))
    row = UserTaskStatus.objects.get(task_id=result.id)
    assert row.state == UserTaskStatus.SUCCEEDED and stopped[-1] == UserTaskStatus.SUCCEEDED, (row.state, stopped)

    run_worker, run_worker_default = _worker_run(noop_task, noop_task.apply_async((user.pk,)).id, user.pk, sql)

    running = UserTaskStatus.objects.create(user=user, task_id='bench-step', task_class=noop_task.name,
                                            name='step', total_steps=100, state=UserTaskStatus.IN_PROGRESS)
    running.increment_completed_steps()
    step, _ = count('step', running.increment_completed_steps)
    assert UserTaskStatus.objects.get(pk=running.pk).completed_steps == 2
    UserTaskStatus.objects.filter(pk=running.pk).update(state=UserTaskStatus.CANCELED)

    def canceled_step():
        try:
            running.increment_completed_steps()
        except TaskCanceledException:
            return True
        return False
    step_canceled, raised = count('step_canceled', canceled_step)
    assert raised, 'a step on a canceled task must raise'

    before = UserTaskStatus.objects.count()
    group10, _ = count('group10', lambda: group(noop_task.si(user.pk) for _ in range(10)).apply_async())
    assert UserTaskStatus.objects.count() == before + 11

    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(app.conf.task_default_queue)
    common.drop_database(BENCH, db)
    measured = {'publish': publish, 'run': run, 'run_worker': run_worker, 'run_worker_default': run_worker_default,
                'step': step, 'step_canceled': step_canceled, 'group10': group10}
    if verbose:
        measured['sql'] = sql
    return measured


def _worker_run(task, task_id, user_id, sql):
    """Statements of one run as a worker makes it (the receivers, not eager), on each connection."""
    from celery.signals import task_postrun, task_prerun, task_success
    from django.db import connection, connections
    from django.test.utils import CaptureQueriesContext

    from user_tasks import status_connection
    from user_tasks.models import UserTaskStatus

    # Register (and, as the capture starts, open) this thread's status connection first: its
    # session settings are sent once per worker child, not per task.
    status_connection.activate()
    alias = status_connection.alias_for(UserTaskStatus)
    status_connection.deactivate()
    task.push_request(id=task_id, is_eager=False, retries=0, args=(user_id,), kwargs={})
    try:
        with CaptureQueriesContext(connection) as default_queries, \
                CaptureQueriesContext(connections[alias]) as queries:
            task_prerun.send(sender=task, task_id=task_id, task=task, args=(user_id,), kwargs={})
            task.run(user_id)
            task_success.send(sender=task, result=None)
            task_postrun.send(sender=task, task_id=task_id, task=task, args=(user_id,), kwargs={}, retval=None,
                              state='SUCCESS')
    finally:
        task.pop_request()
    assert UserTaskStatus.objects.get(task_id=task_id).state == UserTaskStatus.SUCCEEDED
    sql['run_worker'] = [q['sql'] for q in queries.captured_queries]
    sql['run_worker_default'] = [q['sql'] for q in default_queries.captured_queries]
    return len(queries), len(default_queries)


def main():
    verbose = '--verbose' in sys.argv
    if '--db' in sys.argv:
        db = sys.argv[sys.argv.index('--db') + 1]
        print(json.dumps(_measure(db, verbose)))
        return
    results = {}
    for db in ('postgres', 'mariadb'):
        command = [sys.executable, os.path.abspath(__file__), '--db', db] + (['--verbose'] if verbose else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        results[db] = json.loads(output.stdout.strip().splitlines()[-1])
    met = all(results[db][name] <= target for db in ('postgres',) for name, target in TARGETS.items())
    expected = {db: all(results[db][name] == count for name, count in EXPECTED[db].items()) for db in EXPECTED}
    common.report(BENCH, upstream=UPSTREAM, target=TARGETS, expected=EXPECTED, **results,
                  targets_met_postgres=met, as_expected=expected)


if __name__ == '__main__':
    main()

"""
SQL statements per operation of a user task, on PostgreSQL and MariaDB (one JSON line).

Counted with Django's ``CaptureQueriesContext`` around:

- ``publish``: ``noop_task.apply_async`` outside a transaction, to a real Redis broker;
- ``run``: the published task run through Celery's tracer (``apply`` with its task id:
  ``task_prerun`` starting the row and loading it, the body, ``task_success`` ending it
  and sending ``user_task_stopped`` with the row).  Expected: 2 on PostgreSQL (one
  ``UPDATE ... RETURNING`` starts and loads the row), 3 on MariaDB, which has no
  ``UPDATE ... RETURNING`` (a SELECT, then the start's UPDATE);
- ``step``: ``increment_completed_steps()`` on a running task without a parent, and the
  same on a task canceled meanwhile (it must still notice and raise);
- ``group10``: publishing a group of 10 no-op UserTasks.

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
TARGETS = {'publish': 1, 'run': 3, 'step': 1, 'group10': 22}
UPSTREAM = {'publish': 3, 'run': 7, 'step': 3, 'group10': 61}
#: Exact counts expected per database (MariaDB lacks UPDATE ... RETURNING: one more to run).
EXPECTED = {
    'postgres': {'publish': 1, 'run': 2, 'step': 1, 'step_canceled': 2, 'group10': 14},
    # run: SELECT, UPDATE, UPDATE, plus the SET SESSION of the connection prerun reopens.
    'mariadb': {'publish': 1, 'run': 4, 'step': 1, 'step_canceled': 2, 'group10': 14},
}
REDIS_DB = {'postgres': 10, 'mariadb': 11}


def _measure(db, verbose):
    common.configure(BENCH, db=db, broker_db=REDIS_DB[db])

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
    measured = {'publish': publish, 'run': run, 'step': step, 'step_canceled': step_canceled, 'group10': group10}
    if verbose:
        measured['sql'] = sql
    return measured


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

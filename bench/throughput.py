"""
Throughput of no-op UserTasks through a real worker: three ratios and upstream 4.0, in one run (one JSON line).

A ``celery worker`` (prefork, concurrency 2) consumes a private queue on the loopback Redis;
statuses live in PostgreSQL.  Each round publishes N no-op tasks of one kind from this
process and times the wall clock from the first publish to the last completion:

- ``tests.tasks.plain_noop_task`` (plain Celery): complete when the Redis result backend
  (a database of its own) holds N results;
- ``tests.tasks.noop_task`` (the same body, a UserTask): complete when N rows are Succeeded;
- upstream django-user-tasks 4.0's no-op UserTask, installed from PyPI into a virtualenv
  of its own and driven as a black box (``bench/upstream_project``, its own worker, queue
  and database; same broker, result backend and database server): complete when N of its
  rows are Succeeded.

Within a round the two kinds run one after the other, plain first in even rounds and the
UserTask first in odd ones, so a load that drifts through the run favours neither.

Both configurations run, each with a worker of its own: ``default`` (Celery's and Django's
defaults: the Django fix-up closes connections around every task, ``CONN_MAX_AGE`` 0) and
``kept`` (``CONN_MAX_AGE`` and ``CELERY_DB_REUSE_MAX``: the host keeps connections).  Rounds
alternate the kinds; a ratio is computed within a round and the median over rounds is
reported, with each round's load average, since only same-run ratios mean anything on a
shared machine.  The ratios:

- ``ratio_default`` and ``ratio_kept``: plain rate / UserTask rate (targets <= 3 and <= 2);
- ``publish_ratio``: UserTask publish time / plain publish time over the same N, published
  to a queue no worker consumes, so the publisher has the machine to itself as a web
  process does (target <= 2: what the user's click pays);
- ``publish_ratio_while_consuming``: the same, timed inside the throughput rounds while the
  worker consumes on the same two cores (the definition used before; it also carries the
  worker's extra CPU);
- ``vs_upstream``: UserTask rate / upstream 4.0 rate, default configuration (target >= 3).

Usage: ``.venv/bin/python bench/throughput.py [--tasks 2000] [--rounds 3] [--configs default,kept]
[--no-upstream]``.
"""
import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import upstream  # noqa: E402

BENCH = 'throughput'
BOUND = 1800  # seconds, for the whole script
POLL = 0.02
CONFIGS = common.WORKER_CONFIGS
TARGETS = {'ratio_default': 3, 'ratio_kept': 2, 'publish_ratio': 2, 'vs_upstream': 3}


def _median(values):
    return round(statistics.median(values), 2) if values else None


def _in_turn(number, first, second):
    """``first`` then ``second`` in even rounds, the other way round in odd ones."""
    return (first, second) if number % 2 == 0 else (second, first)


def main():  # noqa: C901, PLR0915
    parser = argparse.ArgumentParser()
    parser.add_argument('--tasks', type=int, default=2000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--configs', default='default,kept')
    parser.add_argument('--no-upstream', action='store_true', help='skip upstream 4.0')
    options = parser.parse_args()
    configs = [name for name in options.configs.split(',') if name]
    deadline = common.Deadline(BOUND)
    env = common.configure(BENCH, db='postgres', broker=True, results=True)

    import redis  # noqa: PLC0415
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    from tests.celery import app  # noqa: PLC0415
    from tests.tasks import noop_task, plain_noop_task  # noqa: PLC0415
    from user_tasks.models import UserTaskStatus  # noqa: PLC0415

    results = redis.Redis.from_url(common.redis_url(1))
    results.flushdb()
    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(env['USER_TASKS_TEST_QUEUE'])
    user = get_user_model().objects.create_user('bench', 'bench@example.com')
    host = socket.gethostname()

    upstream_python = upstream_env = upstream_worker = None
    upstream_db = common.database_name(f'{BENCH}_upstream')
    if not options.no_upstream and 'default' in configs:
        upstream_python = upstream.python()
        common.recreate_postgres(upstream_db)
        upstream_env = upstream.environment(upstream_db, f'{upstream_db}_queue', common.redis_url(0),
                                            common.redis_url(1))

    def plain_done(n):
        return results.dbsize() >= n

    def user_done(n):
        # One connection for the whole wait (autocommit: each count sees what has committed);
        # a new one per poll would fork a server process every POLL seconds, on the cores
        # the worker runs on, and charge that to the UserTask side.
        return UserTaskStatus.objects.filter(state=UserTaskStatus.SUCCEEDED).count() >= n

    publish_only_queue = f"{env['USER_TASKS_TEST_QUEUE']}_publish_only"

    def purge(queue):
        with app.connection_for_write() as broker:
            broker.default_channel.queue_purge(queue)

    def publish_only(task, count=options.tasks):
        """Seconds to publish ``count`` tasks to a queue nobody consumes (then emptied again)."""
        purge(publish_only_queue)
        common.empty_status_tables()
        connection.close()
        start = time.perf_counter()
        for _ in range(count):
            task.apply_async((user.pk,), queue=publish_only_queue)
        seconds = time.perf_counter() - start
        purge(publish_only_queue)
        common.empty_status_tables()
        return round(seconds, 3)

    def run(task, done, worker, logfile):
        results.flushdb()
        common.empty_status_tables()
        connection.close()
        start = time.perf_counter()
        for _ in range(options.tasks):
            task.apply_async((user.pk,))
        published = time.perf_counter()
        while not done(options.tasks):
            deadline.check(f'waiting for {task.name}')
            if worker.poll() is not None:
                raise SystemExit(f'bench: the worker exited ({worker.returncode}); see {logfile}')
            time.sleep(POLL)
        end = time.perf_counter()
        return {'seconds': round(end - start, 3), 'rate': round(options.tasks / (end - start), 1),
                'publish_seconds': round(published - start, 3)}

    measured = {}
    publishing = []
    for task in (plain_noop_task, noop_task):  # warm-up: broker and database connections, caches
        publish_only(task, count=50)
    for number in range(options.rounds):
        deadline.check('publishing alone')
        entry = {'load_average': common.load_average()}
        # Which kind goes first alternates, so a load that drifts through the run favours neither.
        for kind, task in _in_turn(number, ('plain', plain_noop_task), ('user_task', noop_task)):
            entry[f'{kind}_seconds'] = publish_only(task)
        entry['ratio'] = round(entry['user_task_seconds'] / entry['plain_seconds'], 2)
        publishing.append(entry)
    try:
        if upstream_python:
            logfile = os.path.join(common.REPO, '.bench-throughput-upstream-worker.log')
            upstream_worker = common.start_worker(
                {'USER_TASKS_TEST_QUEUE': upstream_env['UPSTREAM_BENCH_QUEUE']},
                f'bench_upstream_{os.getpid()}@{host}', logfile, app='upstream_project.celery_app',
                python=upstream_python, cwd=upstream.BENCH_DIR, env_base=upstream_env)
            upstream.drive(upstream_python, upstream_env, 'setup')
        for config in configs:
            logfile = os.path.join(common.REPO, f'.bench-throughput-{config}-worker.log')
            worker = common.start_worker(dict(env, **CONFIGS[config]), f'bench_{config}_{os.getpid()}@{host}',
                                         logfile)
            try:
                for _ in range(4):  # the worker is up and warm
                    plain_noop_task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
                    noop_task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
                connection.close()
                rounds = []
                for number in range(options.rounds):
                    entry = {'load_average': common.load_average()}
                    for kind, task, done in _in_turn(number, ('plain', plain_noop_task, plain_done),
                                                     ('user_task', noop_task, user_done)):
                        entry[kind] = run(task, done, worker, logfile)
                    entry['ratio'] = round(entry['plain']['rate'] / entry['user_task']['rate'], 2)
                    entry['publish_ratio'] = round(
                        entry['user_task']['publish_seconds'] / entry['plain']['publish_seconds'], 2)
                    if upstream_python and config == 'default':
                        results.flushdb()
                        entry['upstream'] = upstream.drive(upstream_python, upstream_env, 'round', str(options.tasks))
                        entry['vs_upstream'] = round(entry['user_task']['rate'] / entry['upstream']['rate'], 2)
                    rounds.append(entry)
                measured[config] = rounds
            finally:
                common.stop_worker(worker)
        failed = UserTaskStatus.objects.exclude(state=UserTaskStatus.SUCCEEDED).count()
    finally:
        if upstream_worker is not None:
            common.stop_worker(upstream_worker)
        if upstream_python:
            common.drop_postgres(upstream_db)
    every = [r for rounds in measured.values() for r in rounds]
    summary = {
        'ratio_default': _median([r['ratio'] for r in measured.get('default', [])]),
        'ratio_kept': _median([r['ratio'] for r in measured.get('kept', [])]),
        'publish_ratio': _median([r['ratio'] for r in publishing]),
        'vs_upstream': _median([r['vs_upstream'] for r in every if 'vs_upstream' in r]),
    }
    met = {name: (value <= TARGETS[name] if name != 'vs_upstream' else value >= TARGETS[name])
           for name, value in summary.items() if value is not None}
    common.report(
        BENCH, tasks=options.tasks, concurrency=2, database='postgres', broker='redis', **summary,
        targets=TARGETS, targets_met=met,
        publish_ratio_while_consuming=_median([r['publish_ratio'] for r in every]),
        publish_rate={'plain': _median([options.tasks / r['plain_seconds'] for r in publishing]),
                      'user_task': _median([options.tasks / r['user_task_seconds'] for r in publishing])},
        publishing_alone=publishing,
        load_average=[r['load_average'] for r in every],
        plain_rate=_median([r['plain']['rate'] for r in every]),
        user_task_rate={config: _median([r['user_task']['rate'] for r in rounds])
                        for config, rounds in measured.items()},
        upstream_rate=_median([r['upstream']['rate'] for r in every if 'upstream' in r]),
        upstream_version=upstream.VERSION if upstream_python else None,
        not_succeeded=failed, rounds=measured,
    )
    results.flushdb()
    common.drop_database(BENCH)


if __name__ == '__main__':
    main()

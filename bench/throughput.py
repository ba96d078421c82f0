"""
Throughput of no-op UserTasks through a real worker, against the same plain Celery task (one JSON line).

One ``celery worker`` (prefork, concurrency 2) consumes a private queue on the loopback
Redis; statuses live in PostgreSQL.  Each round publishes N no-op tasks of one kind from
this process and times the wall clock from the first publish to the last completion:

- ``tests.tasks.noop_task`` (a UserTask): complete when the database holds N Succeeded rows;
- ``tests.tasks.plain_noop_task`` (same body, plain Celery): complete when the Redis result
  backend (a database of its own) holds N results.

Both kinds store their result in that backend, so they differ only by the status
tracking.  Rounds alternate plain/user task (``--rounds``, default 3); the ratio of each
round is computed within the round, and the median is reported.  Absolute rates vary with
the machine's load; compare ratios only.

Usage: ``.venv/bin/python bench/throughput.py [--tasks 2000] [--rounds 3] [--reuse-connections]``.
By default the worker runs as the test project configures it: Celery's Django fixup closes
the database connection before and after every task, so each user task opens one.
``--reuse-connections`` keeps connections (``CONN_MAX_AGE`` and ``CELERY_DB_REUSE_MAX``).
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = 'throughput'
BROKER_DB, RESULT_DB = 12, 13
BOUND = 600  # seconds, for the whole script
POLL = 0.02


def _start_worker(env, name, logfile):
    command = [sys.executable, '-m', 'celery', '-A', 'tests.celery', 'worker', '--pool', 'prefork',
               '--concurrency', '2', '-Q', env['USER_TASKS_TEST_QUEUE'], '-n', name, '--loglevel', 'WARNING',
               '--without-gossip', '--without-mingle', '--without-heartbeat', '-f', logfile]
    worker_env = dict(os.environ, PYTHONPATH=common.REPO)
    return subprocess.Popen(command, cwd=common.REPO, env=worker_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _stop_worker(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--tasks', type=int, default=2000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--reuse-connections', action='store_true',
                        help='keep database connections across tasks (CONN_MAX_AGE and CELERY_DB_REUSE_MAX)')
    options = parser.parse_args()
    deadline = common.Deadline(BOUND)
    extra = {}
    if options.reuse_connections:
        extra.update(USER_TASKS_BENCH_CONN_MAX_AGE='300', USER_TASKS_BENCH_DB_REUSE_MAX='1000000')
    env = common.configure(BENCH, db='postgres', broker_db=BROKER_DB, result_db=RESULT_DB, extra_env=extra)


    import redis
    from django.contrib.auth import get_user_model
    from django.db import connection

    from tests.celery import app
    from tests.tasks import noop_task, plain_noop_task
    from user_tasks.models import UserTaskStatus

    results = redis.Redis.from_url(common.redis_url(RESULT_DB))
    results.flushdb()
    with app.connection_for_write() as broker:
        broker.default_channel.queue_purge(env['USER_TASKS_TEST_QUEUE'])
    user = get_user_model().objects.create_user('bench', 'bench@example.com')
    logfile = os.path.join(common.REPO, '.bench-throughput-worker.log')
    worker = _start_worker(env, f'bench_throughput_{os.getpid()}@{socket.gethostname()}', logfile)
    try:
        # Warm up (and wait for the worker): both kinds once, a few times.
        for _ in range(4):
            plain_noop_task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
            noop_task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
        connection.close()

        def plain_done(n):
            return results.dbsize() >= n

        def user_done(n):
            done = UserTaskStatus.objects.filter(state=UserTaskStatus.SUCCEEDED).count() >= n
            connection.close()
            return done

        def run(task, done):
            results.flushdb()
            UserTaskStatus.objects.all().delete()
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

        rounds = []
        for _ in range(options.rounds):
            plain = run(plain_noop_task, plain_done)
            ours = run(noop_task, user_done)
            rounds.append({'plain': plain, 'user_task': ours, 'ratio': round(plain['rate'] / ours['rate'], 2)})
        failed = UserTaskStatus.objects.exclude(state=UserTaskStatus.SUCCEEDED).count()
    finally:
        _stop_worker(worker)
    ratios = [r['ratio'] for r in rounds]
    common.report(
        BENCH, tasks=options.tasks, concurrency=2, database='postgres', broker='redis',
        reuse_connections=options.reuse_connections,
        plain_rate=statistics.median(r['plain']['rate'] for r in rounds),
        user_task_rate=statistics.median(r['user_task']['rate'] for r in rounds),
        ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
        upstream_ratio=16, target_ratio=3, target_met=statistics.median(ratios) <= 3,
        not_succeeded=failed, rounds=rounds,
    )
    results.flushdb()
    common.drop_database(BENCH)


if __name__ == '__main__':
    main()

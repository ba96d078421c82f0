"""
Where the time of a no-op UserTask goes, against the same plain Celery task (one JSON line).

For each kind (plain Celery, then UserTask) a fresh ``celery worker`` (prefork,
concurrency 2, Redis, PostgreSQL) is started with every pool child under pyinstrument
(``bench/common/profiling.py``), N tasks are published from this process, itself under
pyinstrument, and the worker is stopped once all have completed so that its children
write their sessions.  Each side's busy time (idle waits left out) is sorted into buckets:
connection setup, commits and statement round trips, the ORM, our receivers, telemetry,
the broker client and Celery itself; the result gives milliseconds per task and each
bucket's share.

Usage: ``.venv/bin/python bench/profile.py [--tasks 2000] [--reuse-connections]``.
"""
import argparse
import glob
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import profiling  # noqa: E402

BENCH = 'profile'
BOUND = 600
POLL = 0.02


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--tasks', type=int, default=2000)
    parser.add_argument('--reuse-connections', action='store_true')
    options = parser.parse_args()
    deadline = common.Deadline(BOUND)
    directory = tempfile.mkdtemp(prefix='user_tasks_bench_profile_')
    extra = {'USER_TASKS_BENCH_PROFILE_DIR': directory}
    if options.reuse_connections:
        extra.update(common.WORKER_CONFIGS['kept'])
    env = common.configure(BENCH, db='postgres', broker=True, results=True, extra_env=extra)

    import redis  # noqa: PLC0415
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from pyinstrument import Profiler  # noqa: PLC0415

    from tests.tasks import noop_task, plain_noop_task  # noqa: PLC0415
    from user_tasks.models import UserTaskStatus  # noqa: PLC0415

    results = redis.Redis.from_url(common.redis_url(1))
    user = get_user_model().objects.create_user('bench', 'bench@example.com')
    load = [common.load_average()]
    measured = {}
    try:
        for kind, task in (('plain', plain_noop_task), ('user_task', noop_task)):
            for stale in glob.glob(os.path.join(directory, '*')):
                os.remove(stale)
            logfile = os.path.join(common.REPO, f'.bench-profile-{kind}-worker.log')
            worker = common.start_worker(env, f'bench_profile_{kind}_{os.getpid()}@{socket.gethostname()}',
                                         logfile)
            try:
                for _ in range(4):  # the worker is up, Django's and kombu's caches are warm
                    task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
                results.flushdb()
                common.empty_status_tables()
                connection.close()
                profiler = Profiler(interval=0.0005)
                profiler.start()
                start = time.perf_counter()
                for _ in range(options.tasks):
                    task.apply_async((user.pk,))
                published = time.perf_counter()
                publisher = profiler.stop()
                while True:
                    if kind == 'plain':
                        done = results.dbsize() >= options.tasks
                    else:
                        done = UserTaskStatus.objects.filter(state=UserTaskStatus.SUCCEEDED).count() >= options.tasks
                        connection.close()
                    if done:
                        break
                    deadline.check(f'waiting for {task.name}')
                    time.sleep(POLL)
                end = time.perf_counter()
            finally:
                common.stop_worker(worker)
            from pyinstrument.session import Session  # noqa: PLC0415
            sessions = [Session.load(path) for path in glob.glob(os.path.join(directory, 'child-*.pyisession'))]
            worker_side = profiling.breakdown(sessions)
            publisher_side = profiling.breakdown([publisher])
            measured[kind] = {
                'rate': round(options.tasks / (end - start), 1),
                'publish_rate': round(options.tasks / (published - start), 1),
                'worker_children': len(sessions),
                'worker_ms_per_task': round(1000 * worker_side['busy_seconds'] / options.tasks, 3),
                'worker_percent': worker_side['percent'],
                'publisher_ms_per_task': round(1000 * publisher_side['busy_seconds'] / options.tasks, 3),
                'publisher_percent': publisher_side['percent'],
            }
            load.append(common.load_average())
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        results.flushdb()
    common.report(BENCH, tasks=options.tasks, reuse_connections=options.reuse_connections,
                  load_average=load, **measured)
    common.drop_database(BENCH)


if __name__ == '__main__':
    main()

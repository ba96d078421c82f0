"""
CPU time per task, by process, for plain Celery and UserTasks through a real worker (one JSON line).

The throughput ratio (``bench/throughput.py``) is wall time on two shared cores, so it moves
with whatever else the machine does.  The CPU each process spends per task does not, and it
says where a UserTask's extra cost lands: the publisher (this process), the worker's main
process, its pool children, the PostgreSQL server (its backends, and through the
postmaster's reaped-children times those that exited during the run) and the Redis server.
Read from ``/proc`` (Linux), in ms per task.

For each configuration (``default``: Celery's and Django's defaults; ``kept``: the host keeps
connections) and each round, a fresh worker (prefork, concurrency 2) runs N tasks of each
kind, published from this process as fast as it can; the CPU of every group is read before
the first publish and after the last completion.  The kind measured first alternates by
round.  Reported: each group's median over rounds, the totals, and ``cpu_ratio`` (UserTask
total / plain total).

Usage: ``.venv/bin/python bench/cpu_per_task.py [--tasks 3000] [--rounds 2] [--configs kept,default]``.
"""
import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = 'cpu_per_task'
BOUND = 900  # seconds, for the whole script
POLL = 0.02
CONFIGS = common.WORKER_CONFIGS
_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _stat(pid):
    """(command name, parent pid, own CPU seconds, reaped children's CPU seconds) of ``pid``, or None."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            name, rest = stat.read().rsplit(')', 1)
    except OSError:
        return None
    fields = rest.split()
    # After the name: state ppid ... utime(11) stime(12) cutime(13) cstime(14), counted from state.
    return (name.split('(', 1)[1], int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS,
            (int(fields[13]) + int(fields[14])) / _TICKS)


def _cpu_by_group(worker_pid):
    """CPU seconds so far of each group; exited server backends and pool children count through their parent."""
    totals = {'publisher': 0.0, 'worker main': 0.0, 'worker children': 0.0, 'postgres': 0.0, 'redis': 0.0}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        name, parent, own, reaped = stat
        if pid == os.getpid():
            totals['publisher'] += own
        elif pid == worker_pid:
            totals['worker main'] += own
            totals['worker children'] += reaped
        elif parent == worker_pid:
            totals['worker children'] += own
        elif name.startswith('postgres'):
            totals['postgres'] += own + reaped  # the postmaster's reaped time: backends that exited
        elif name.startswith('redis'):
            totals['redis'] += own
    return totals


def main():  # noqa: C901
    parser = argparse.ArgumentParser()
    parser.add_argument('--tasks', type=int, default=3000)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--configs', default='kept,default')
    options = parser.parse_args()
    if not os.path.isdir('/proc/self'):
        raise SystemExit('bench: cpu_per_task reads /proc (Linux only)')
    deadline = common.Deadline(BOUND)
    env = common.configure(BENCH, db='postgres', broker=True, results=True)

    import redis  # noqa: PLC0415
    from django.contrib.auth import get_user_model  # noqa: PLC0415

    from tests.tasks import noop_task, plain_noop_task  # noqa: PLC0415
    from user_tasks.models import UserTaskStatus  # noqa: PLC0415

    results = redis.Redis.from_url(common.redis_url(1))
    user = get_user_model().objects.create_user('bench', 'bench@example.com')
    kinds = {
        'plain': (plain_noop_task, lambda n: results.dbsize() >= n),
        'user_task': (noop_task, lambda n: UserTaskStatus.objects.filter(state=UserTaskStatus.SUCCEEDED).count() >= n),
    }

    def measure(config, kind):
        task, done = kinds[kind]
        logfile = os.path.join(common.REPO, f'.bench-cpu-{config}-{kind}-worker.log')
        worker = common.start_worker(dict(env, **CONFIGS[config]), f'bench_cpu_{os.getpid()}@{socket.gethostname()}',
                                     logfile)
        try:
            for _ in range(4):  # the worker is up and warm
                task.apply_async((user.pk,)).get(timeout=max(1, deadline.left()))
            results.flushdb()
            common.empty_status_tables()
            before, start = _cpu_by_group(worker.pid), time.perf_counter()
            for _ in range(options.tasks):
                task.apply_async((user.pk,))
            while not done(options.tasks):
                deadline.check(f'waiting for {task.name}')
                if worker.poll() is not None:
                    raise SystemExit(f'bench: the worker exited ({worker.returncode}); see {logfile}')
                time.sleep(POLL)
            seconds = time.perf_counter() - start
            after = _cpu_by_group(worker.pid)
        finally:
            common.stop_worker(worker)
        per_task = {group: round(1000 * (after[group] - before[group]) / options.tasks, 3) for group in after}
        per_task['total'] = round(sum(per_task.values()), 3)
        per_task['rate'] = round(options.tasks / seconds, 1)
        return per_task

    measured = {}
    load = [common.load_average()]
    try:
        for config in [name for name in options.configs.split(',') if name]:
            rounds = []
            for number in range(options.rounds):
                order = ('plain', 'user_task') if number % 2 == 0 else ('user_task', 'plain')
                rounds.append({kind: measure(config, kind) for kind in order})
                load.append(common.load_average())
            medians = {kind: {key: round(statistics.median(r[kind][key] for r in rounds), 3)
                              for key in rounds[0][kind]} for kind in kinds}
            medians['cpu_ratio'] = round(medians['user_task']['total'] / medians['plain']['total'], 2)
            medians['extra_ms_per_task'] = {group: round(medians['user_task'][group] - medians['plain'][group], 3)
                                            for group in medians['plain'] if group != 'rate'}
            measured[config] = medians
    finally:
        results.flushdb()
    common.report(BENCH, tasks=options.tasks, rounds=options.rounds, concurrency=2, database='postgres',
                  broker='redis', unit='ms of CPU per task', load_average=load, **measured)
    common.drop_database(BENCH)


if __name__ == '__main__':
    main()

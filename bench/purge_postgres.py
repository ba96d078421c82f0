"""
Peak memory and longest statement of a purge of 200,000 statuses and 400,000 artifacts (one JSON line).

The issue's two purge rows, on PostgreSQL (``bench/purge.py`` checks a purge's outcome and
rate on the test settings' database).  The script fills its own database with set-based SQL
(no Python objects): 190,000 old final tasks and 1,000 old groups of 9 old children
(200,000 statuses), two artifacts each (400,000; 1,000 of them with a real file under a
temporary MEDIA_ROOT), plus rows the purge must keep: 1,000 recent final tasks and 100 old
tasks still running.  After ``ANALYZE`` it runs ``user_tasks.retention.purge()`` (the body
of the periodic ``purge_old_user_tasks``) with the default batch size and measures:

- peak memory above the start: the resident set size sampled every 5 ms by a thread,
  and the peak of Python allocations (``tracemalloc``); the larger is reported;
- the longest single statement: every statement timed by a connection ``execute_wrapper``.

Usage: ``.venv/bin/python bench/purge_postgres.py [--scale 1.0]``.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = 'purge'
UPSTREAM = {'peak_memory_mb': 300, 'longest_statement_s': 0.87}
TARGET = {'peak_memory_mb': 50, 'longest_statement_s': 0.25}
FILES = 1000


def _rss():
    """The resident set size of this process, in bytes (Linux)."""
    with open('/proc/self/statm', encoding='ascii') as statm:
        return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


class RssSampler(threading.Thread):
    """Samples the resident set size until stopped; keeps the peak."""

    def __init__(self, interval=0.005):
        super().__init__(daemon=True)
        self.interval, self.peak, self.stopping = interval, _rss(), threading.Event()

    def run(self):
        while not self.stopping.wait(self.interval):
            self.peak = max(self.peak, _rss())

    def stop(self):
        self.stopping.set()
        self.join()
        self.peak = max(self.peak, _rss())


def _fill(cursor, user_id, scale):
    """Write the rows with set-based SQL; return (statuses, artifacts, file names) expected to go."""
    leaves, groups, children = int(190000 * scale), int(1000 * scale), 9
    status_columns = ('created, modified, uuid, user_id, task_id, parent_id, is_container, task_class, name, state, '
                      'completed_steps, total_steps, attempts, started, heartbeat, finished')
    old = "now() - interval '60 days'"
    final = "(ARRAY['Succeeded', 'Failed', 'Canceled'])[1 + g %% 3]"
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskstatus ({status_columns})
        SELECT {old}, {old}, gen_random_uuid(), %s, 'old-' || g, NULL, false, 'tests.tasks.noop_task', 'Task ' || g,
               {final}, 1, 1, 1, {old}, {old}, {old}
        FROM generate_series(1, %s) g""", [user_id, leaves])
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskstatus ({status_columns})
        SELECT {old}, {old}, gen_random_uuid(), %s, 'group-' || g, NULL, true, 'celery.group', 'Group ' || g,
               'Succeeded', %s, %s, 1, {old}, NULL, {old}
        FROM generate_series(1, %s) g""", [user_id, children, children, groups])
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskstatus ({status_columns})
        SELECT {old}, {old}, gen_random_uuid(), %s, 'child-' || g, c.id, false, 'tests.tasks.noop_task', 'Child ' || g,
               'Succeeded', 1, 1, 1, {old}, {old}, {old}
        FROM generate_series(1, %s) g JOIN user_tasks_usertaskstatus c ON c.task_id = 'group-' || ((g - 1) / %s + 1)
        """, [user_id, groups * children, children])
    # Kept: recent final rows, and old rows still running.
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskstatus ({status_columns})
        SELECT now(), now(), gen_random_uuid(), %s, 'recent-' || g, NULL, false, 'tests.tasks.noop_task', 'Recent',
               'Succeeded', 1, 1, 1, now(), now(), now()
        FROM generate_series(1, 1000) g""", [user_id])
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskstatus ({status_columns})
        SELECT {old}, {old}, gen_random_uuid(), %s, 'running-' || g, NULL, false, 'tests.tasks.noop_task', 'Running',
               'In Progress', 0, 1, 1, {old}, now(), NULL
        FROM generate_series(1, 100) g""", [user_id])
    cursor.execute(f"""
        INSERT INTO user_tasks_usertaskartifact (created, modified, uuid, status_id, name, file, url, text)
        SELECT {old}, {old}, gen_random_uuid(), s.id, n.name, '', '', 'The output of ' || s.name
        FROM user_tasks_usertaskstatus s CROSS JOIN (VALUES ('Output'), ('Error')) AS n(name)""")
    cursor.execute("""
        UPDATE user_tasks_usertaskartifact SET file = 'user_tasks/bench/' || id || '.txt'
        WHERE id IN (SELECT a.id FROM user_tasks_usertaskartifact a
                     JOIN user_tasks_usertaskstatus s ON s.id = a.status_id
                     WHERE s.task_id LIKE 'old-%%' ORDER BY a.id LIMIT %s)
        RETURNING file""", [FILES])
    files = [row[0] for row in cursor.fetchall()]
    cursor.execute('ANALYZE user_tasks_usertaskstatus')
    cursor.execute('ANALYZE user_tasks_usertaskartifact')
    statuses = leaves + groups * (children + 1)
    return statuses, statuses * 2, files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--scale', type=float, default=1.0)
    options = parser.parse_args()
    deadline = common.Deadline(900)
    media = tempfile.mkdtemp(prefix='user_tasks_bench_purge_')
    try:
        common.configure(BENCH, db='postgres', extra_env={'USER_TASKS_TEST_MEDIA_ROOT': media})

        from django.contrib.auth import get_user_model
        from django.db import connection

        from user_tasks.models import UserTaskArtifact, UserTaskStatus
        from user_tasks.retention import purge

        user = get_user_model().objects.create_user('bench-purge')
        with connection.cursor() as cursor:
            statuses, artifacts, files = _fill(cursor, user.pk, options.scale)
        os.makedirs(os.path.join(media, 'user_tasks', 'bench'))
        for name in files:
            with open(os.path.join(media, name), 'w', encoding='ascii') as stream:
                stream.write('x')
        deadline.check('filling')
        kept = UserTaskStatus.objects.count() - statuses

        timings = []

        def timed(execute, sql, params, many, context):
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                timings.append((time.perf_counter() - start, sql))

        tracemalloc.start()
        sampler = RssSampler()
        start_rss = sampler.peak
        sampler.start()
        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            counts = purge()
        seconds = time.perf_counter() - started
        sampler.stop()
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        deadline.check('purging')

        left_files = sum(len(names) for _, _, names in os.walk(media))
        longest, longest_sql = max(timings)
        assert counts == {'status': statuses, 'artifact': artifacts, 'file': len(files)}, counts
        assert UserTaskStatus.objects.count() == kept and left_files == 0
        assert UserTaskArtifact.objects.count() == kept * 2
        rss_peak_mb = (sampler.peak - start_rss) / 2 ** 20
        python_peak_mb = python_peak / 2 ** 20
        common.report(
            'purge_postgres', database='postgres', purged=counts, kept_statuses=kept, seconds=round(seconds, 2),
            statements=len(timings), peak_memory_above_start_mb=round(max(rss_peak_mb, python_peak_mb), 1),
            rss_peak_above_start_mb=round(rss_peak_mb, 1), tracemalloc_peak_mb=round(python_peak_mb, 1),
            longest_statement_s=round(longest, 3), longest_statement=' '.join(longest_sql.split())[:120],
            upstream=UPSTREAM, target=TARGET,
            target_met=max(rss_peak_mb, python_peak_mb) < TARGET['peak_memory_mb']
            and longest < TARGET['longest_statement_s'],
        )
        common.drop_database(BENCH)
    finally:
        shutil.rmtree(media, ignore_errors=True)


if __name__ == '__main__':
    main()

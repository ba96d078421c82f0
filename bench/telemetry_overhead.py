"""
Per-task cost of a user task's lifecycle with telemetry on versus off, in one run.

Each task is run eagerly: its row, its start, three progress steps, its success (six
lifecycle events, a span per attempt and per publish). "on" means metrics recorded and
spans created with the OpenTelemetry SDK and an in-memory exporter; "off" means both
disconnected (``user_tasks.metrics.disconnect()``).

Two databases (``BENCH_DB``):

- ``sqlite`` (default): in-memory SQLite, no disk sync and no network round trip, so the
  task itself is as cheap as it can get: the worst case for the ratio.
- ``postgres``: a private database on the PostgreSQL of ``USER_TASKS_TEST_POSTGRES``
  (created and dropped here), as a real deployment runs: the realistic ratio.

On and off blocks alternate; each adjacent pair gives one ratio and the result is the
median of those, so drift and other processes on the machine hit both sides alike.  The
ratio is reported for wall time and for this process's CPU time (``process_time``), which
the other programs on a busy machine disturb least; with PostgreSQL the CPU time leaves
out the server's work, so its wall ratio is the one that counts there.  Prints one JSON
line.
"""
import json
import os
import statistics
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
DB = os.environ.get('BENCH_DB', 'sqlite')
os.environ['USER_TASKS_TEST_BROKER'] = 'memory'
if DB == 'postgres':
    os.environ['USER_TASKS_TEST_DB'] = 'postgres'
    os.environ['USER_TASKS_TEST_DB_NAME'] = f'ut_bench_telemetry_{os.getpid()}_{uuid.uuid4().hex[:6]}'
else:
    os.environ['USER_TASKS_TEST_DB'] = 'sqlite'
    os.environ['USER_TASKS_TEST_SQLITE_NAME'] = ':memory:'

PAIRS = int(os.environ.get('BENCH_PAIRS', '30'))
TASKS_PER_BLOCK = int(os.environ.get('BENCH_TASKS', '40'))


def _postgres(statement):
    """Run one statement on the server's ``postgres`` database (create/drop the bench's)."""
    from urllib.parse import urlparse

    import psycopg2

    from tests.settings import SERVICES
    url = urlparse(SERVICES['postgres'])
    connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or '',
                                  password=url.password or '', dbname='postgres', connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def run():
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from tests.celery import app
    from tests.tasks import sample_task
    from user_tasks import metrics
    from user_tasks.models import UserTaskStatus

    call_command('migrate', verbosity=0)
    app.conf.task_always_eager = True
    user = get_user_model().objects.create_user('bench')
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def block():
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(TASKS_PER_BLOCK):
            sample_task.apply_async((user.pk,), {'steps': 3})
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        UserTaskStatus.objects.all().delete()
        exporter.clear()
        return wall / TASKS_PER_BLOCK, cpu / TASKS_PER_BLOCK

    for _ in range(3):
        block()  # warm up caches, connections, imports, label sets
    pairs = []
    for index in range(PAIRS):
        first_on = index % 2 == 0  # alternate which side of a pair goes first
        measured = {}
        for telemetry_on in ((True, False) if first_on else (False, True)):
            (metrics.connect if telemetry_on else metrics.disconnect)()
            measured[telemetry_on] = block()
        pairs.append((measured[True], measured[False]))
    metrics.connect()

    def median(values):
        return statistics.median(values)
    on_wall, off_wall = median([on[0] for on, _ in pairs]), median([off[0] for _, off in pairs])
    on_cpu, off_cpu = median([on[1] for on, _ in pairs]), median([off[1] for _, off in pairs])
    return {
        'bench': 'telemetry_overhead',
        'database': {'sqlite': 'sqlite in memory', 'postgres': 'postgresql (loopback)'}[DB],
        'tasks': PAIRS * TASKS_PER_BLOCK * 2,
        'off_ms_per_task': round(off_wall * 1000, 3), 'on_ms_per_task': round(on_wall * 1000, 3),
        'ratio': round(median([on[0] / off[0] for on, off in pairs]), 4),
        'off_cpu_ms_per_task': round(off_cpu * 1000, 3), 'on_cpu_ms_per_task': round(on_cpu * 1000, 3),
        'ratio_cpu': round(median([on[1] / off[1] for on, off in pairs]), 4),
        'target_ratio': 1.05,
    }


def main():
    if DB == 'postgres':
        _postgres(f'CREATE DATABASE "{os.environ["USER_TASKS_TEST_DB_NAME"]}"')
    try:
        result = run()
    finally:
        if DB == 'postgres':
            from django.db import connections
            connections.close_all()
            _postgres(f'DROP DATABASE IF EXISTS "{os.environ["USER_TASKS_TEST_DB_NAME"]}"')
    print(json.dumps(result))


if __name__ == '__main__':
    main()

"""
Per-task cost of a user task's lifecycle with telemetry on versus off, in one run.

Each task is run eagerly (its row, start, three progress steps, success) on an
in-memory SQLite database, so disk syncs (which would dwarf telemetry) do not blur it:
this is the worst case for the ratio. "on" means metrics recorded and spans created with
the OpenTelemetry SDK and an in-memory exporter; "off" means both disconnected.
Blocks of on and off alternate so drift hits both; the ratio compares the medians of
the per-block means. Prints one JSON line.
"""
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
os.environ['USER_TASKS_TEST_DB'] = 'sqlite'
os.environ['USER_TASKS_TEST_SQLITE_NAME'] = ':memory:'
os.environ['USER_TASKS_TEST_BROKER'] = 'memory'

BLOCKS = int(os.environ.get('BENCH_BLOCKS', '10'))
TASKS_PER_BLOCK = int(os.environ.get('BENCH_TASKS', '100'))


def main():
    import django  # pylint: disable=import-outside-toplevel
    django.setup()
    from django.contrib.auth import get_user_model  # pylint: disable=import-outside-toplevel
    from django.core.management import call_command  # pylint: disable=import-outside-toplevel
    from opentelemetry import trace  # pylint: disable=import-outside-toplevel
    from opentelemetry.sdk.trace import TracerProvider  # pylint: disable=import-outside-toplevel
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # pylint: disable=import-outside-toplevel
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # pylint: disable=import-outside-toplevel
        InMemorySpanExporter,
    )

    from tests.celery import app  # pylint: disable=import-outside-toplevel
    from tests.tasks import sample_task  # pylint: disable=import-outside-toplevel
    from user_tasks import metrics  # pylint: disable=import-outside-toplevel
    from user_tasks.models import UserTaskStatus  # pylint: disable=import-outside-toplevel

    call_command('migrate', verbosity=0)
    app.conf.task_always_eager = True
    user = get_user_model().objects.create_user('bench')
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def block():
        started = time.perf_counter()
        for _ in range(TASKS_PER_BLOCK):
            sample_task.apply_async((user.pk,), {'steps': 3})
        elapsed = (time.perf_counter() - started) / TASKS_PER_BLOCK
        UserTaskStatus.objects.all().delete()
        exporter.clear()
        return elapsed

    block()  # warm up caches, connections, imports
    on, off = [], []
    for index in range(BLOCKS * 2):
        telemetry_on = index % 2 == 0
        (metrics.connect if telemetry_on else metrics.disconnect)()
        (on if telemetry_on else off).append(block())
    metrics.connect()
    on_ms, off_ms = statistics.median(on) * 1000, statistics.median(off) * 1000
    print(json.dumps({
        'bench': 'telemetry_overhead', 'tasks': BLOCKS * TASKS_PER_BLOCK * 2, 'database': 'sqlite in memory',
        'off_ms_per_task': round(off_ms, 3), 'on_ms_per_task': round(on_ms, 3),
        'ratio': round(on_ms / off_ms, 4), 'target_ratio': 1.05,
    }))


if __name__ == '__main__':
    main()

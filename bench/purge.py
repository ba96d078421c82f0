"""
Purge benchmark: 200,000 finished rows, each with an artifact file, plus live rows that must survive.

Prints one JSON line: rows and files purged, wall time, rows per second, the tracemalloc
peak during the purge (memory must not grow with the table), and whether every file is
gone and every live row kept.  The database comes from the test settings
(``USER_TASKS_TEST_DB``, SQLite in memory by default); ``BENCH_PURGE_ROWS`` changes the scale.
"""
import json
import os
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')

import django  # noqa: E402

ROWS = int(os.environ.get('BENCH_PURGE_ROWS', '200000'))
LIVE = 100


def main():
    media = tempfile.mkdtemp(prefix='bench-purge-')
    from django.conf import settings
    settings.MEDIA_ROOT = media
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from user_tasks.conf import settings as ut_settings
    from user_tasks.models import UserTaskArtifact
    from user_tasks.models import UserTaskStatus as S
    from user_tasks.retention import purge

    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        user = get_user_model().objects.create(username='bench')
        old = timezone.now() - timedelta(days=60)
        os.makedirs(os.path.join(media, 'user_tasks', 'bench'), exist_ok=True)
        created = time.monotonic()
        for start in range(0, ROWS, 10000):
            count = min(10000, ROWS - start)
            rows = S.objects.bulk_create([S(user=user, task_id=f'old-{start + n}', task_class='bench', name='old',
                                            total_steps=1, state=S.SUCCEEDED, finished=old) for n in range(count)])
            ids = [row.pk for row in rows if row.pk is not None] or list(
                S.objects.filter(task_id__in=[row.task_id for row in rows]).values_list('id', flat=True))
            artifacts = []
            for pk in ids:
                name = f'user_tasks/bench/{pk}.txt'
                with open(os.path.join(media, name), 'w', encoding='utf-8') as stream:
                    stream.write('x')
                artifacts.append(UserTaskArtifact(status_id=pk, file=name))
            UserTaskArtifact.objects.bulk_create(artifacts, batch_size=5000)
        S.objects.bulk_create([S(user=user, task_id=f'live-{n}', task_class='bench', name='live', total_steps=1,
                                 state=S.IN_PROGRESS, started=old) for n in range(LIVE)])
        setup_seconds = time.monotonic() - created

        tracemalloc.start()
        began = time.monotonic()
        counts = purge()
        seconds = time.monotonic() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        files_left = sum(len(files) for _, _, files in os.walk(os.path.join(media, 'user_tasks')))
        print(json.dumps({
            'benchmark': 'purge', 'database': connection.vendor, 'rows': ROWS,
            'batch_size': ut_settings.USER_TASKS_PURGE_BATCH_SIZE,
            'purged': counts, 'seconds': round(seconds, 2), 'rows_per_second': round(counts['status'] / seconds),
            'tracemalloc_peak_mb': round(peak / 1e6, 2), 'files_left': files_left,
            'live_rows_kept': S.objects.filter(task_id__startswith='live-').count() == LIVE,
            'setup_seconds': round(setup_seconds, 1),
        }))
        return 0 if files_left == 0 and counts['status'] == ROWS else 1
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == '__main__':
    sys.exit(main())

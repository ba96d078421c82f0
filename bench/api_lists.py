"""
SQL statements and time per REST list page, for 1, 500 and 10,000 tasks (one JSON line).

On PostgreSQL, the owner of N statuses (each with one artifact) lists ``tasks/`` and
``artifacts/`` through Django's test client with session authentication, as Studio's
pages do.  ``api_statements`` counts the statements on the user_tasks tables (the list
itself); ``statements_with_session_auth`` adds the host's session and user look-ups.  Lists are
unpaginated, the REST default (``pages=all``), and also paginated by 50 (``pages=50``).
Each request is made once counting its statements (a connection ``execute_wrapper``:
the request resets Django's query log) and timed on a second run without it.

Usage: ``.venv/bin/python bench/api_lists.py [--sizes 1,500,10000]``.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BENCH = 'api_lists'
API = '/api/tasks/v0/'
TARGET = 4
UPSTREAM = '1 + rows (10,000 tasks: 10,002 statements, ~9 s)'


def _fill(user, total, have):
    """Add statuses (one artifact each) for ``user`` until there are ``total``."""
    from user_tasks.models import UserTaskArtifact, UserTaskStatus
    batch = 2000
    for start in range(have, total, batch):
        stop = min(total, start + batch)
        rows = UserTaskStatus.objects.bulk_create([
            UserTaskStatus(user=user, task_id=f'bench-{user.pk}-{n}', task_class='tests.tasks.noop_task',
                           name=f'Task {n}', total_steps=1, completed_steps=1, state=UserTaskStatus.SUCCEEDED)
            for n in range(start, stop)
        ])
        if rows[0].pk is None:  # backends without RETURNING
            rows = list(UserTaskStatus.objects.filter(task_id__in=[r.task_id for r in rows]))
        UserTaskArtifact.objects.bulk_create([UserTaskArtifact(status=row, text='done') for row in rows])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--sizes', default='1,500,10000')
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(',')]
    deadline = common.Deadline(300)
    common.configure(BENCH, db='postgres')

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment

    setup_test_environment()
    owner = get_user_model().objects.create_user('bench-owner', 'owner@example.com')
    other = get_user_model().objects.create_user('bench-other', 'other@example.com')
    _fill(other, 100, 0)  # rows the owner must not see
    client = Client()
    client.force_login(owner)

    def measure(url):
        queries = []
        with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        start = time.perf_counter()
        body = client.get(url).json()
        seconds = time.perf_counter() - start
        rows = len(body['results']) if isinstance(body, dict) else len(body)
        api = [sql for sql in queries if 'user_tasks_' in sql]
        return {'statements': len(queries), 'api_statements': len(api), 'seconds': round(seconds, 3), 'rows': rows}

    results, have = {}, 0
    for size in sizes:
        # Rows of another user are filtered out, the owner's grow to ``size``.
        _fill(owner, size, have)
        have = size
        deadline.check(f'filling {size} rows')
        results[str(size)] = {
            'tasks': measure(f'{API}tasks/'),
            'artifacts': measure(f'{API}artifacts/'),
        }
        paginated = {'DEFAULT_PAGINATION_CLASS': 'rest_framework.pagination.LimitOffsetPagination', 'PAGE_SIZE': 50}
        with override_settings(REST_FRAMEWORK=paginated):
            results[str(size)]['tasks_page50'] = measure(f'{API}tasks/?limit=50&offset=0')
            results[str(size)]['artifacts_page50'] = measure(f'{API}artifacts/?limit=50&offset=0')
        deadline.check(f'listing {size} rows')
    kinds = ('tasks', 'artifacts', 'tasks_page50', 'artifacts_page50')
    counts = {kind: sorted({results[str(size)][kind]['statements'] for size in sizes}) for kind in kinds}
    api = {kind: sorted({results[str(size)][kind]['api_statements'] for size in sizes}) for kind in kinds}
    constant = all(len(values) == 1 for values in list(counts.values()) + list(api.values()))
    common.report(BENCH, database='postgres', authentication='session', upstream=UPSTREAM, target=TARGET,
                  constant=constant, target_met=constant and max(max(v) for v in api.values()) <= TARGET,
                  api_statements=api, statements_with_session_auth=counts,
                  seconds_10000={kind: results[str(max(sizes))][kind]['seconds'] for kind in kinds},
                  by_size=results)
    common.drop_database(BENCH)


if __name__ == '__main__':
    main()

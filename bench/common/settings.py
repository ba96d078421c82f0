"""
Django settings of the benchmarks: the test project's (``tests.settings``, env-driven), plus:

- ``USER_TASKS_BENCH_CONN_MAX_AGE``: Django's ``CONN_MAX_AGE`` for the database (seconds;
  unset: 0, Django's default).
- ``USER_TASKS_BENCH_DB_REUSE_MAX``: Celery's ``CELERY_DB_REUSE_MAX`` (unset: Celery's Django
  fixup closes the connections before and after every task).
- ``USER_TASKS_BENCH_PROFILE_DIR``: worker pool children profile themselves into that
  directory (``bench/common/profiling.py``).
- ``USER_TASKS_BENCH_ASYNC_COMMIT``: ``0`` or ``1`` sets ``USER_TASKS_STATUS_ASYNC_COMMIT``
  (for the publisher and the worker), to compare the two on a given server.
"""
import os

from tests.settings import *  # noqa: F401,F403
from tests.settings import DATABASES

if os.environ.get('USER_TASKS_BENCH_CONN_MAX_AGE'):
    _age = os.environ['USER_TASKS_BENCH_CONN_MAX_AGE']
    DATABASES['default']['CONN_MAX_AGE'] = None if _age == 'none' else float(_age)
if os.environ.get('USER_TASKS_BENCH_DB_REUSE_MAX'):
    CELERY_DB_REUSE_MAX = int(os.environ['USER_TASKS_BENCH_DB_REUSE_MAX'])
if os.environ.get('USER_TASKS_BENCH_PROFILE_DIR'):
    CELERY_IMPORTS = ['bench.common.profiling']
if os.environ.get('USER_TASKS_BENCH_ASYNC_COMMIT'):
    USER_TASKS_STATUS_ASYNC_COMMIT = os.environ['USER_TASKS_BENCH_ASYNC_COMMIT'] == '1'

"""
A web process publishing user tasks at the same instant as others: ``python -m tests.integration.publisher SPEC``.

``SPEC`` is JSON: ``task`` (a registered name), ``user_id``, ``kwargs``, ``threads``,
``atomic`` (publish inside ``transaction.atomic()`` after a read, as a view under
``ATOMIC_REQUESTS`` does: on MariaDB the transaction's snapshot then predates the others'
inserts), ``hold`` (seconds the transaction stays open after the publish), ``ready_dir``
and ``go_file``.  Every thread opens its own connection, writes ``<ready_dir>/<pid>-<n>``,
waits for ``go_file`` and publishes once.  Prints one JSON line: the outcome per thread.
"""
import json
import os
import sys
import threading
import time

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import tests.tasks  # noqa: E402,F401  registers the sample tasks
from tests.celery import app  # noqa: E402
from user_tasks.exceptions import TooManyActiveTasks  # noqa: E402

GO_TIMEOUT = 60


def _wait_for(path):
    deadline = time.monotonic() + GO_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f'no {path} within {GO_TIMEOUT} s')
        time.sleep(0.001)


def _publish(spec, index, outcomes):
    task = app.tasks[spec['task']]
    try:
        if spec.get('atomic'):
            with transaction.atomic():
                get_user_model().objects.filter(pk=spec['user_id']).count()  # the snapshot starts here
                _ready_then_go(spec, index)
                result = task.apply_async((spec['user_id'],), spec.get('kwargs') or {})
                time.sleep(spec.get('hold', 0))
        else:
            _ready_then_go(spec, index)
            result = task.apply_async((spec['user_id'],), spec.get('kwargs') or {})
        outcomes[index] = {'task_id': result.id}
    except TooManyActiveTasks as exc:
        outcomes[index] = {'rejected': str(exc)}
    except Exception as exc:
        outcomes[index] = {'error': f'{type(exc).__name__}: {exc}'}
    finally:
        connection.close()


def _ready_then_go(spec, index):
    with open(os.path.join(spec['ready_dir'], f'{os.getpid()}-{index}'), 'w', encoding='utf-8'):
        pass
    _wait_for(spec['go_file'])


def main():
    spec = json.loads(sys.argv[1])
    outcomes = [None] * spec['threads']
    threads = [threading.Thread(target=_publish, args=(spec, index, outcomes)) for index in range(spec['threads'])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({'pid': os.getpid(), 'outcomes': outcomes}), flush=True)


if __name__ == '__main__':
    main()

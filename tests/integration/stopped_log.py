"""
Imported by the integration worker (``celery worker --include``): logs every ``user_task_stopped``.

``user_task_stopped`` fires in the worker's processes, not in the test process, so this
receiver appends one line per signal, ``<status uuid>\\t<state>\\t<pid>``, to the file named
by ``USER_TASKS_TEST_STOPPED_LOG``; the tests read it back.  Each line is a single
``O_APPEND`` write, so lines from the prefork children never interleave.
"""
import os

from user_tasks import user_task_stopped

ENV = 'USER_TASKS_TEST_STOPPED_LOG'


def record_stop(sender, status=None, **kwargs):
    """Append one line for this stop to the log file, when one is configured."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = f'{status.uuid}\t{status.state}\t{os.getpid()}\n'.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


if os.environ.get(ENV):
    user_task_stopped.connect(record_stop, dispatch_uid='tests.integration.stopped_log', weak=False)

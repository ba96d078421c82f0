"""
Lifecycle events: how a state change tells the rest of the system about itself.

The transition methods on ``UserTaskStatus`` call ``announce``/``announce_stopped``;
the events are delivered after the surrounding transaction commits (at once in
autocommit mode and under Django's ``TestCase``: see ``user_tasks.commit``), so
observers never see a change that is later rolled back.  Observers (the public
``user_task_stopped`` signal, metrics, tracing) connect to ``event``; a change of state
never has to know who is listening.
"""
import logging

from django.db import router
from django.dispatch import Signal

from user_tasks import user_task_stopped
from user_tasks.commit import after_commit

LOG = logging.getLogger(__name__)

SUBMITTED = 'submitted'
STARTED = 'started'
PROGRESS = 'progress'
RETRIED = 'retried'
CANCELED = 'canceled'
STOPPED = 'stopped'
RECOVERED = 'recovered'

#: Sent with ``sender=UserTaskStatus, status=<row>, kind=<one of the names above>`` plus details.
event = Signal()
#: Sent with ``sender=UserTaskStatus, counts={'status': n, 'artifact': n, 'file': n}`` after a purge.
purged = Signal()


def _on_commit(status, callback):
    after_commit(callback, using=router.db_for_write(type(status)))


def announce(status, kind, **details):
    """Deliver a lifecycle event for ``status`` after commit, if anyone listens."""
    if not event.has_listeners():
        return
    _on_commit(status, lambda: _send(status, kind, details))


def announce_stopped(status):
    """Deliver the final event for ``status``, and ``user_task_stopped``, once, after commit."""
    def send():
        _send(status, STOPPED, {})
        for receiver, response in user_task_stopped.send_robust(sender=type(status), status=status):
            if isinstance(response, Exception):
                LOG.error('user_task_stopped receiver %r failed for task %s: %r', receiver, status.task_id, response)
    _on_commit(status, send)


def _send(status, kind, details):
    for receiver, response in event.send_robust(sender=type(status), status=status, kind=kind, **details):
        if isinstance(response, Exception):
            LOG.warning('user_tasks lifecycle observer %r failed on %s: %r', receiver, kind, response)

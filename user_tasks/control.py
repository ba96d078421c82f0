"""
Celery control for the core: revoking, terminating, and the app that does it.

Part of the hub (docs/decisions/0006-lifecycle-events-and-observers.rst): it imports
only Celery and the leaves (``user_tasks.commit``), so the model can revoke a waiting
task and schedule the termination of a running one without importing the Celery layer
(``user_tasks.tasks``, ``user_tasks.signals``).

``celery_app`` is the current Celery app, looked up at call time.  It is the same
attribute as ``user_tasks.signals.celery_app`` (that module aliases it), so replacing
either, e.g. ``mock.patch('user_tasks.signals.celery_app')``, is seen by every caller.
"""
import logging

from celery import current_app
from celery import current_app as celery_app

from user_tasks.commit import after_commit

LOG = logging.getLogger(__name__)

#: Registered name of the task that terminates a canceled task still running (``user_tasks.tasks``).
TERMINATE_TASK = 'user_tasks.tasks.terminate_canceled_task'


def revoke(task_id):
    """
    Ask the workers not to run ``task_id`` (a task that has not started yet), if the broker is reachable.

    A revoke is a hint: the row's final state is what stops the body (``task_prerun`` skips a
    row that has ended), so a broadcast the broker refuses is logged and the cancel goes on.

    Arguments:
        task_id (str): the Celery task id.

    Returns:
        bool: whether the broadcast was sent.
    """
    try:
        celery_app.control.revoke(task_id)
    except Exception as exc:  # noqa: BLE001  any broker failure: the row's state still stops the task
        LOG.warning('Could not revoke user task %s in Celery (%r); its canceled row keeps it from running',
                    task_id, exc)
        return False
    return True


def terminate(task_id):
    """
    Ask the worker running ``task_id`` to stop it now, with SIGTERM.

    Arguments:
        task_id (str): the Celery task id.
    """
    celery_app.control.revoke(task_id, terminate=True, signal='SIGTERM')


def schedule_termination(task_id, countdown, using, deleted=False):
    """
    After the current transaction on ``using`` commits, run ``TERMINATE_TASK`` for ``task_id`` in ``countdown`` s.

    "After commit" is ``user_tasks.commit.after_commit``'s: at once in autocommit mode and
    under Django's ``TestCase``.

    The task is looked up by its registered name in the current app (where its shared
    task lives, whatever ``celery_app`` has been replaced with), so the core needs no
    import of the module defining it.

    Arguments:
        task_id (str): the Celery task id of the canceled task.
        countdown (float): the grace period, in seconds.
        using (str): the database alias whose commit releases the message.
        deleted (bool): the row is being deleted too (``user_tasks.deletion``): no row will tell
            whether the work stopped.
    """
    def send():
        task = current_app.tasks[TERMINATE_TASK]
        try:
            if deleted:
                task.apply_async((task_id,), {'deleted': True}, countdown=countdown)
            else:
                task.apply_async((task_id,), countdown=countdown)
        except Exception as exc:  # noqa: BLE001  the cancel stands; the task stops at its next progress call
            LOG.warning('Could not schedule the termination of canceled user task %s (%r); it stops at its '
                        'next progress call', task_id, exc)
    after_commit(send, using=using)

"""
Exceptions raised by user_tasks.

Layer: leaf.  Imports nothing of user_tasks (Django's translation only).
"""
from django.utils.translation import ngettext


class TaskCanceledException(RuntimeError):  # noqa: N818  a public name since django-user-tasks 1.0
    """Raised inside a running task whose status has been canceled, to stop its work."""


class MixedOwnersError(ValueError):
    """
    Raised when a group, chain or chord holds user tasks of more than one user.

    A canvas gets one container row, owned by one user; members of another user under it
    would be shown, canceled and deleted through that user's container (ADR 0008).
    """


class TooManyActiveTasks(RuntimeError):  # noqa: N818  the name OEP-3's issue gives it
    """
    Raised by a publish that would give a user more active tasks of a class than its limit.

    Nothing was written and nothing was sent.  ``limit`` is the limit, ``task_name`` the
    registered task name; a view usually answers 429 Too Many Requests with ``str(exc)``.
    """

    def __init__(self, task_name, limit):
        self.task_name, self.limit = task_name, limit
        super().__init__(ngettext(
            'Too many active tasks: at most %(limit)d task of this kind (%(task)s) may be active at once. '
            'Wait for it to end, or cancel it.',
            'Too many active tasks: at most %(limit)d tasks of this kind (%(task)s) may be active at once. '
            'Wait for one to end, or cancel one.',
            limit) % {'limit': limit, 'task': task_name})


class ArgumentsNotStorable(ValueError):  # noqa: N818  named like TooManyActiveTasks, its sibling
    """
    Raised by a publish of a ``retryable`` task whose arguments cannot be kept to try it again.

    They must be JSON (lists, dicts with string keys, strings, numbers, booleans, None) and
    at most ``USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES`` once encoded.  Nothing was written or sent.
    """


class RetryRefused(Exception):  # noqa: N818  named like TooManyActiveTasks, its sibling
    """
    Raised when a task cannot be tried again; ``reason`` says why, ``str(exc)`` says it to a user.

    Reasons: ``not_retryable`` (its class does not allow it, or nothing was kept to do it),
    ``not_ended`` (it is still waiting or running), ``succeeded``, ``already_retried``.
    """

    def __init__(self, reason, message):
        self.reason = reason
        super().__init__(message)


class RetryNotSent(RuntimeError):  # noqa: N818  named like RetryRefused, its sibling
    """
    Raised when a task tried again could not be sent to the workers (the broker refused it or was unreachable).

    Nothing is left behind: no new row, and the old task is not marked as tried again, so it
    can be tried again later.  ``__cause__`` is the broker's error; a view usually answers
    503 Service Unavailable with ``str(exc)``.
    """

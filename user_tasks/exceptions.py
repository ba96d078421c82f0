"""
Exceptions raised by user_tasks.

Layer: leaf.  Imports nothing.
"""


class TaskCanceledException(RuntimeError):  # noqa: N818  a public name since django-user-tasks 1.0
    """Raised inside a running task whose status has been canceled, to stop its work."""


class MixedOwnersError(ValueError):
    """
    Raised when a group, chain or chord holds user tasks of more than one user.

    A canvas gets one container row, owned by one user; members of another user under it
    would be shown, canceled and deleted through that user's container (ADR 0008).
    """

"""Exceptions raised by user_tasks."""


class TaskCanceledException(RuntimeError):
    """Raised inside a running task whose status has been canceled, to stop its work."""


class MixedOwnersError(ValueError):
    """
    Raised when a group, chain or chord holds user tasks of more than one user.

    A canvas gets one container row, owned by one user; members of another user under it
    would be shown, canceled and deleted through that user's container (ADR 0008).
    """

"""Exceptions raised by user_tasks."""


class TaskCanceledException(RuntimeError):
    """Raised inside a running task whose status has been canceled, to stop its work."""

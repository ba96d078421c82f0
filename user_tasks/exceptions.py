"""
Exceptions raised by user_tasks.

Layer: leaf.  Imports nothing.
"""


class TaskCanceledException(RuntimeError):  # noqa: N818  a public name since django-user-tasks 1.0
    """Raised inside a running task whose status has been canceled, to stop its work."""

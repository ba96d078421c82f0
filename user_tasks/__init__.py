"""
Status tracking for long, user-triggered Celery tasks.

``user_task_stopped`` is sent exactly once for every task row that reaches a final
state (Succeeded, Failed or Canceled), after the row is final and committed, with
``sender=UserTaskStatus`` and ``status=<the row>``.

Layer: leaf.  Imports only Django; every other module may import it.
"""
from django.dispatch import Signal

__version__ = "5.0.0.dev0"

user_task_stopped = Signal()

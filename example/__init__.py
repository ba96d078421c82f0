"""Demo Django project for user_tasks (used by ``make demo``)."""
from .celery import app as celery_app

__all__ = ['celery_app']

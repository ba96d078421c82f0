"""The demo's Celery app, configured from the Django settings (``CELERY_`` names)."""
import os

from celery import Celery

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'example.settings')

app = Celery('example')
# Message protocol 1, as edx-platform's Celery app (openedx/core/lib/celery) sends; user_tasks
# reads both protocols, and the demo runs what Studio and the LMS run.
app.conf.task_protocol = 1
app.config_from_object('django.conf:settings', namespace='CELERY')
app.autodiscover_tasks()

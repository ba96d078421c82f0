"""The Celery app of the upstream bench project (Django settings, namespace CELERY)."""
import os

from celery import Celery

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'upstream_project.settings')

app = Celery('upstream_project')
app.config_from_object('django.conf:settings', namespace='CELERY')
app.autodiscover_tasks(['upstream_project'])

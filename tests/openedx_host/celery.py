"""
The host's Celery app, configured from Django settings as the chosen layout's host would.

edx-platform reads Django settings without a namespace (``BROKER_URL``,
``CELERYBEAT_SCHEDULE``...); a modern host uses the ``CELERY_`` namespace.
"""
import os

from celery import Celery

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.openedx_host.envs.test')

app = Celery('openedx_host')
if os.environ.get('OPENEDX_HOST_LAYOUT', 'plugin') == 'edx-platform':
    app.config_from_object('django.conf:settings')
else:
    app.config_from_object('django.conf:settings', namespace='CELERY')
app.autodiscover_tasks()

"""
The host's Celery app, configured from Django settings as the chosen layout's host would.

edx-platform reads Django settings without a namespace (``BROKER_URL``,
``CELERYBEAT_SCHEDULE``...); a modern host uses the ``CELERY_`` namespace.  Both send
message protocol 1, as edx-platform's Celery app does.
"""
import os

from celery import Celery

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.openedx_host.envs.test')

app = Celery('openedx_host')
# As edx-platform's shared app (openedx/core/lib/celery): every message Studio and the LMS
# publish is a protocol-1 message.  Set before the configuration, as edx-platform does.
app.conf.task_protocol = 1
if os.environ.get('OPENEDX_HOST_LAYOUT', 'plugin') == 'edx-platform':
    app.config_from_object('django.conf:settings')
else:
    app.config_from_object('django.conf:settings', namespace='CELERY')
app.autodiscover_tasks()

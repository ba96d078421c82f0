"""
Django application configuration for user_tasks.

Layer: wiring, the top.  ``ready()`` connects the Celery receivers (``user_tasks.signals``)
and the observers (``user_tasks.metrics.connect()``); the core itself never imports
``user_tasks.metrics``, so ``import user_tasks.models`` loads neither prometheus_client
nor opentelemetry.
"""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UserTasksConfig(AppConfig):
    """Connects the Celery signal receivers and the observers when Django starts."""

    name = 'user_tasks'
    label = 'user_tasks'
    verbose_name = _('User Tasks')
    # Upstream's tables use 32-bit integer primary keys; keep them whatever the host's default.
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        """Connect the Celery receivers, the observers, the artifact file cleanup and the system checks."""
        from user_tasks import checks, files, metrics, signals  # noqa: PLC0415  apps may not import models at load
        signals.connect_receivers()
        metrics.connect()  # in either order: observers hang off the lifecycle
        files.connect()
        checks.register()

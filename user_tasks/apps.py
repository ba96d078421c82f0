"""Django application configuration for user_tasks."""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UserTasksConfig(AppConfig):
    """Connects the Celery signal receivers when Django starts."""

    name = 'user_tasks'
    label = 'user_tasks'
    verbose_name = _('User Tasks')
    # Upstream's tables use 32-bit integer primary keys; keep them whatever the host's default.
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        from . import checks, files, metrics, signals  # pylint: disable=import-outside-toplevel
        metrics.connect()  # first: its Celery hooks note what the receivers' transitions announce
        signals.connect_receivers()
        files.connect()
        checks.register()

"""The host's own app: what edx-platform's ``PluginsConfig`` does, plus SQLite tuning."""
from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created
from edx_django_utils.plugins import connect_plugin_receivers


def _sqlite_wal(sender, connection, **kwargs):
    """The worker and the test processes share one SQLite file: let readers and a writer overlap."""
    if connection.vendor == 'sqlite':
        with connection.cursor() as cursor:
            cursor.execute('PRAGMA journal_mode=WAL')


class OpenedxHostConfig(AppConfig):
    name = 'tests.openedx_host'
    label = 'openedx_host'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        connection_created.connect(_sqlite_wal, dispatch_uid='openedx_host.sqlite_wal')
        # edx-platform's PluginsConfig picks the project type from ROOT_URLCONF; ours is in settings.
        connect_plugin_receivers(settings.PROJECT_TYPE)

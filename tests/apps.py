"""The test project's app: holds sample tasks and test-only receivers."""
from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _fast_sqlite(sender, connection, **kwargs):
    """WAL lets the in-process worker read while a test writes; no fsync keeps the file fast."""
    if connection.vendor == 'sqlite':
        # On the raw connection, so query-count tests never see these statements.
        connection.connection.execute('PRAGMA journal_mode=WAL')
        connection.connection.execute('PRAGMA synchronous=OFF')


class TestsConfig(AppConfig):
    name = 'tests'
    label = 'tests'

    def ready(self):
        connection_created.connect(_fast_sqlite, dispatch_uid='tests.fast_sqlite')

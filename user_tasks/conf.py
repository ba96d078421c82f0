"""
Settings for user_tasks, read from Django settings at access time.

``settings.USER_TASKS_MAX_AGE`` and friends are looked up on every access, so
``override_settings`` in tests and late changes by a host (Open edX plugins change
settings after apps are imported) are always seen.  Assigning an attribute on
``settings`` overrides that value for this process until it is deleted again.

Layer: leaf.  Imports Django, and the default filter backends when the setting is read.
"""
from datetime import timedelta

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage, default_storage, storages
from django.utils.module_loading import import_string

#: The STORAGES alias that, when configured, holds artifact files.
STORAGE_ALIAS = 'user_task_artifacts'


def _default_status_filters():
    from user_tasks.filters import StatusFilterBackend  # noqa: PLC0415  DRF loads only when the setting is read
    return (StatusFilterBackend,)


def _default_artifact_filters():
    from user_tasks.filters import ArtifactFilterBackend  # noqa: PLC0415  as above
    return (ArtifactFilterBackend,)


DEFAULTS = {
    'USER_TASKS_MAX_AGE': timedelta(days=30),
    'USER_TASKS_STATUS_FILTERS': _default_status_filters,
    'USER_TASKS_ARTIFACT_FILTERS': _default_artifact_filters,
    'USER_TASKS_ARTIFACT_STORAGE': None,
    'USER_TASKS_HEARTBEAT_INTERVAL': 30,
    'USER_TASKS_STALE_AFTER': timedelta(minutes=10),
    'USER_TASKS_PENDING_TIMEOUT': timedelta(hours=24),
    'USER_TASKS_MAX_AGE_BY_STATE': {},
    'USER_TASKS_PURGE_BATCH_SIZE': 1000,
    'USER_TASKS_TERMINATE_AFTER': {},
    'USER_TASKS_PUBLISH_ON_COMMIT': True,
    'USER_TASKS_METRICS_PORT': None,
    'USER_TASKS_METRICS_TOKEN': None,
    'USER_TASKS_METRICS_ADDRESS': '127.0.0.1',
    'USER_TASKS_METRICS_DATABASE_GAUGES': True,
    'USER_TASKS_TRACE_EXCEPTION_MESSAGES': False,
    'USER_TASKS_ARTIFACT_DOWNLOADS': False,
    'USER_TASKS_MAX_ACTIVE_PER_USER': {},
    'USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES': 65536,
    'USER_TASKS_STATUS_CONNECTION': True,
    'USER_TASKS_STATUS_ASYNC_COMMIT': True,
}

#: Settings holding sequences of classes, which may be given as dotted paths.
_CLASS_TUPLES = {'USER_TASKS_STATUS_FILTERS', 'USER_TASKS_ARTIFACT_FILTERS'}


class LazySettings:
    """Attribute access to the user_tasks settings, with defaults."""

    def __init__(self):
        object.__setattr__(self, '_overrides', {})

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f'{name} is not a user_tasks setting')
        if name in self._overrides:
            value = self._overrides[name]
        else:
            value = getattr(django_settings, name, None)
            if value is None:
                default = DEFAULTS[name]
                value = default() if callable(default) else default
        if name in _CLASS_TUPLES:
            value = tuple(import_string(v) if isinstance(v, str) else v for v in value)
        return value

    def __setattr__(self, name, value):
        self._overrides[name] = value

    def __delattr__(self, name):
        self._overrides.pop(name, None)


settings = LazySettings()


def get_storage(import_path=None):
    """
    Return the storage that holds artifact files.

    An explicit ``import_path`` wins; otherwise ``STORAGES['user_task_artifacts']``,
    then ``USER_TASKS_ARTIFACT_STORAGE`` (an import path), then the default storage.
    """
    if import_path is None:
        if STORAGE_ALIAS in getattr(django_settings, 'STORAGES', {}):
            return storages[STORAGE_ALIAS]
        import_path = settings.USER_TASKS_ARTIFACT_STORAGE
        if import_path is None:
            return default_storage
        try:
            storage_class = import_string(import_path)
        except (ImportError, TypeError, ValueError, AttributeError) as exc:
            return _MisconfiguredStorage(f'USER_TASKS_ARTIFACT_STORAGE = {import_path!r}: {exc}')
        return storage_class()
    return import_string(import_path)()


class _MisconfiguredStorage(Storage):
    """
    The artifact storage while ``USER_TASKS_ARTIFACT_STORAGE`` names nothing importable: every use raises.

    The artifact model's file field asks for its storage as the models load; raising there
    would stop ``django.setup()`` before the system check (``user_tasks.E004``) could name the
    setting.  Nothing is ever stored elsewhere instead.
    """

    def __init__(self, problem):
        self._problem = problem

    def __getattribute__(self, name):
        if name == '_problem' or name.startswith('__'):
            return object.__getattribute__(self, name)
        raise ImproperlyConfigured(object.__getattribute__(self, '_problem'))

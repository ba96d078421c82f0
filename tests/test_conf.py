"""``user_tasks.conf``: lazy settings with defaults, attribute overrides, storage lookup."""
from datetime import timedelta

import pytest
from django.core.files.storage import FileSystemStorage, InMemoryStorage, default_storage
from django.test.utils import override_settings
from rest_framework.filters import BaseFilterBackend, OrderingFilter

from user_tasks.conf import get_storage, settings
from user_tasks.filters import ArtifactFilterBackend, StatusFilterBackend


class OtherFilter(BaseFilterBackend):
    pass


class CustomStorage(InMemoryStorage):
    pass


DEFAULT_STORAGES = {
    'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'},
    'staticfiles': {'BACKEND': 'django.contrib.staticfiles.storage.StaticFilesStorage'},
}


def test_defaults():
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=30)
    assert settings.USER_TASKS_STATUS_FILTERS == (StatusFilterBackend,)
    assert settings.USER_TASKS_ARTIFACT_FILTERS == (ArtifactFilterBackend,)
    assert settings.USER_TASKS_ARTIFACT_STORAGE is None
    assert settings.USER_TASKS_MAX_AGE_BY_STATE == {}
    assert settings.USER_TASKS_PURGE_BATCH_SIZE == 1000
    assert settings.USER_TASKS_PUBLISH_ON_COMMIT is True


def test_read_at_access_time():
    with override_settings(USER_TASKS_MAX_AGE=timedelta(days=2)):
        assert settings.USER_TASKS_MAX_AGE == timedelta(days=2)
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=30)


def test_attribute_assignment_overrides_until_deleted():
    settings.USER_TASKS_MAX_AGE = timedelta(hours=3)
    try:
        assert settings.USER_TASKS_MAX_AGE == timedelta(hours=3)
        with override_settings(USER_TASKS_MAX_AGE=timedelta(days=2)):
            assert settings.USER_TASKS_MAX_AGE == timedelta(hours=3)
    finally:
        del settings.USER_TASKS_MAX_AGE
    assert settings.USER_TASKS_MAX_AGE == timedelta(days=30)


def test_unknown_setting():
    with pytest.raises(AttributeError):
        settings.USER_TASKS_NO_SUCH_SETTING


def test_artifact_filters_read_from_their_own_setting():
    with override_settings(USER_TASKS_STATUS_FILTERS=(OtherFilter,)):
        assert settings.USER_TASKS_STATUS_FILTERS == (OtherFilter,)
        assert settings.USER_TASKS_ARTIFACT_FILTERS == (ArtifactFilterBackend,)
    with override_settings(USER_TASKS_ARTIFACT_FILTERS=(OrderingFilter,)):
        assert settings.USER_TASKS_ARTIFACT_FILTERS == (OrderingFilter,)
        assert settings.USER_TASKS_STATUS_FILTERS == (StatusFilterBackend,)


def test_filters_as_dotted_paths():
    with override_settings(USER_TASKS_ARTIFACT_FILTERS=('tests.test_conf.OtherFilter',)):
        assert settings.USER_TASKS_ARTIFACT_FILTERS == (OtherFilter,)


class TestGetStorage:

    def test_default_storage(self):
        assert get_storage() is default_storage

    def test_artifact_storage_setting(self):
        with override_settings(USER_TASKS_ARTIFACT_STORAGE='tests.test_conf.CustomStorage'):
            assert isinstance(get_storage(), CustomStorage)

    def test_storages_alias_takes_priority(self):
        storages_setting = dict(DEFAULT_STORAGES, user_task_artifacts={
            'BACKEND': 'django.core.files.storage.InMemoryStorage'})
        with override_settings(STORAGES=storages_setting,
                               USER_TASKS_ARTIFACT_STORAGE='tests.test_conf.CustomStorage'):
            storage = get_storage()
            assert type(storage) is InMemoryStorage
            assert storage is get_storage()

    def test_explicit_import_path_wins(self):
        with override_settings(USER_TASKS_ARTIFACT_STORAGE='tests.test_conf.CustomStorage'):
            assert type(get_storage('django.core.files.storage.FileSystemStorage')) is FileSystemStorage

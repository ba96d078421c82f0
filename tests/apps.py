"""The test project's app: holds sample tasks and test-only receivers."""
from django.apps import AppConfig


class TestsConfig(AppConfig):
    name = 'tests'
    label = 'tests'

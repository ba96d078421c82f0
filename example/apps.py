"""App config of the demo project's own app (it holds the sample tasks)."""
from django.apps import AppConfig


class ExampleConfig(AppConfig):
    name = 'example'
    default_auto_field = 'django.db.models.AutoField'

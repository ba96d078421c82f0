"""App config of the demo project's own app (it holds the sample tasks)."""
from django.apps import AppConfig


class ExampleConfig(AppConfig):
    name = 'example'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        # A host opts in to the owner-or-superuser permissions of the API and the pages.
        from user_tasks.rules import add_rules
        add_rules()

"""Per-environment plugin settings; edx-django-utils calls each module's ``plugin_settings(settings)``."""

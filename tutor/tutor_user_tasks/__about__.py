"""The plugin's version: always the django-user-tasks version it installs by default."""
__version__ = '5.0.0.dev0'

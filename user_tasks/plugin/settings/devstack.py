"""
Devstack settings from the plugin.

Devstack runs no Celery beat either, so nothing changes here beyond ``common``: run the
periodic jobs by hand with ``manage.py cms purge_old_user_tasks`` and
``manage.py cms reap_stale_user_tasks`` when you need them.
"""


def plugin_settings(settings):
    """Nothing beyond the common settings."""

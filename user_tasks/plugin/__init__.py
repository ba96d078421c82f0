"""
Open edX wiring for user_tasks: a plugin app that LMS and Studio discover by entry point.

Only :class:`~user_tasks.plugin.apps.UserTasksPluginConfig` (label ``user_tasks_plugin``)
is registered under the ``lms.djangoapp`` and ``cms.djangoapp`` entry point groups, so the
plugin coexists with edx-platform, which lists ``'user_tasks'`` in INSTALLED_APPS itself.
Its settings functions add ``'user_tasks'`` only where it is missing.
"""

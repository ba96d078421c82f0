"""
Test settings from the plugin (edx-platform's ``lms/envs/test.py`` and ``cms/envs/test.py``).

Tests see the same permission rules, backend and schedule as production; they only need
nothing that would reach outside the process, and the plugin adds nothing of that kind.
"""


def plugin_settings(settings):
    """Nothing beyond the common settings."""

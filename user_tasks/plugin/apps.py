"""
The plugin AppConfig that edx-django-utils' plugin framework discovers in LMS and Studio.

It carries no models.  ``plugin_app`` tells the host to mount the REST API
(``api/tasks/v0/``, un-namespaced, as Studio mounts it), the status pages and metrics
(``user_tasks/``), and which settings functions to run per environment; ``ready()``
registers the owner-or-superuser permission rules, because settings functions run
before any app is loaded.

Layer: wiring.  Imports ``user_tasks.rules``; may import anything below.
"""
import logging

import rules
from django.apps import AppConfig
from edx_django_utils.plugins import PluginSettings, PluginURLs

from user_tasks.rules import NEW_PERMISSIONS, PERMISSIONS, add_rules

LOG = logging.getLogger(__name__)

#: edx-platform's ProjectType values; literals, so the plugin never imports edx-platform.
PROJECT_TYPES = ('lms.djangoapp', 'cms.djangoapp')
#: edx-platform's SettingsType values, each with a module under ``user_tasks/plugin/settings/``.
SETTINGS_TYPES = ('common', 'production', 'devstack', 'test')


def _url_config():
    """
    Mount ``user_tasks.plugin.urls`` at the root with no namespace of its own.

    The module puts the REST API at ``api/tasks/v0/``, where Studio mounts it, and the
    pages and metrics at ``user_tasks/``; one prefix for all of them would put the pages
    under the API's path.  An empty namespace keeps the API's URL names un-namespaced.
    """
    return {
        PluginURLs.NAMESPACE: '',
        PluginURLs.REGEX: r'^',
        PluginURLs.RELATIVE_PATH: 'urls',
    }


def _settings_config():
    """One settings module per environment: ``settings.common``, ``settings.production``..."""
    return {
        settings_type: {PluginSettings.RELATIVE_PATH: f'settings.{settings_type}'}
        for settings_type in SETTINGS_TYPES
    }


def register_rules():
    """
    Register the owner-or-superuser rules unless the host already defined them.

    edx-platform never calls ``user_tasks.rules.add_rules()``, so without this only
    superusers could read the REST API there.  Returns whether the rules were added.
    """
    present = [name for name in PERMISSIONS if rules.perm_exists(name)]
    if present:
        # add_rules() would replace the host's own predicates; leave them all alone, but
        # give a host that defines every 4.0 permission the ones 4.0 did not have.
        legacy = [name for name in PERMISSIONS if name not in NEW_PERMISSIONS]
        if all(name in present for name in legacy):
            for name in NEW_PERMISSIONS:
                if name not in present:
                    rules.add_perm(name, PERMISSIONS[name])
            return False
        if len(present) != len(PERMISSIONS):
            LOG.warning('user_tasks plugin: the host defines only some user_tasks permissions (%s); '
                        'not adding the default rules', ', '.join(present))
        return False
    add_rules()
    return True


class UserTasksPluginConfig(AppConfig):
    """Plugin entry point of user_tasks for Open edX (LMS and Studio)."""

    name = 'user_tasks.plugin'
    label = 'user_tasks_plugin'
    verbose_name = 'User Tasks (Open edX plugin)'

    # The Celery receivers are connected by user_tasks' own AppConfig, which the settings
    # functions put in INSTALLED_APPS, so there is no signals_config.
    plugin_app = {
        PluginURLs.CONFIG: {project_type: _url_config() for project_type in PROJECT_TYPES},
        PluginSettings.CONFIG: {project_type: _settings_config() for project_type in PROJECT_TYPES},
    }

    def ready(self):
        register_rules()

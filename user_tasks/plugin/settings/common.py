"""
Settings every Open edX environment gets from the plugin (LMS and Studio alike).

Each change keeps what the host already has: ``'user_tasks'`` is added to INSTALLED_APPS
only when missing, defaults apply only to unset names, and beat entries are added next to
the host's own, never over them.
"""
from datetime import timedelta

from celery.schedules import crontab

#: How long finished tasks are kept when the host says nothing (edx-platform's Studio says 7 days).
DEFAULT_MAX_AGE = timedelta(days=30)

#: The backend that answers ``user.has_perm(perm, obj)`` from the ``rules`` registry.
RULES_BACKEND = 'rules.permissions.ObjectPermissionBackend'
DJANGO_DEFAULT_BACKENDS = ['django.contrib.auth.backends.ModelBackend']

#: INSTALLED_APPS entries that already install user_tasks' own app (label ``user_tasks``).
USER_TASKS_APP_ENTRIES = ('user_tasks', 'user_tasks.apps.UserTasksConfig')

#: Periodic jobs, keyed by beat entry name.  The reaper fails In Progress tasks whose
#: heartbeat is older than USER_TASKS_STALE_AFTER (10 minutes by default) and Pending ones
#: older than USER_TASKS_PENDING_TIMEOUT, so it runs well inside that window.
BEAT_SCHEDULE = {
    'user_tasks.purge_old_user_tasks': {
        'task': 'user_tasks.tasks.purge_old_user_tasks',
        'schedule': crontab(hour=3, minute=17),
    },
    'user_tasks.reap_stale_user_tasks': {
        'task': 'user_tasks.tasks.reap_stale_user_tasks',
        'schedule': timedelta(minutes=5),
    },
}

#: edx-platform's Celery apps read Django settings without a namespace (old-style
#: ``CELERYBEAT_SCHEDULE``); hosts using the ``CELERY_`` namespace read
#: ``CELERY_BEAT_SCHEDULE``.  Celery ignores whichever name its app does not use.
BEAT_SCHEDULE_SETTINGS = ('CELERYBEAT_SCHEDULE', 'CELERY_BEAT_SCHEDULE')


def plugin_settings(settings):
    """Apply the plugin's settings to the host's settings module ``settings``, in place."""
    add_installed_app(settings)
    if getattr(settings, 'USER_TASKS_MAX_AGE', None) is None:
        settings.USER_TASKS_MAX_AGE = DEFAULT_MAX_AGE
    add_beat_schedule(settings)
    add_rules_backend(settings)


def add_installed_app(settings):
    """Add ``'user_tasks'`` unless the host (edx-platform does) already installs it."""
    apps = getattr(settings, 'INSTALLED_APPS', [])
    if any(app in USER_TASKS_APP_ENTRIES for app in apps):
        return
    if isinstance(apps, list):
        apps.append('user_tasks')
    else:
        settings.INSTALLED_APPS = type(apps)([*apps, 'user_tasks'])


def add_beat_schedule(settings):
    """Add the periodic jobs to both beat schedule settings, next to the host's entries."""
    for setting in BEAT_SCHEDULE_SETTINGS:
        schedule = getattr(settings, setting, None)
        if schedule is None:
            schedule = {}
            setattr(settings, setting, schedule)
        scheduled_tasks = {entry.get('task') for entry in schedule.values() if isinstance(entry, dict)}
        for name, entry in BEAT_SCHEDULE.items():
            # A host that schedules one of our tasks itself, under any name, keeps its entry alone.
            if name not in schedule and entry['task'] not in scheduled_tasks:
                schedule[name] = dict(entry)


def add_rules_backend(settings):
    """Make sure ``rules``' object-permission backend answers ``has_perm``."""
    backends = getattr(settings, 'AUTHENTICATION_BACKENDS', None)
    if backends is None:
        settings.AUTHENTICATION_BACKENDS = [*DJANGO_DEFAULT_BACKENDS, RULES_BACKEND]
    elif RULES_BACKEND not in backends:
        if isinstance(backends, list):
            backends.append(RULES_BACKEND)
        else:
            settings.AUTHENTICATION_BACKENDS = type(backends)([*backends, RULES_BACKEND])

"""
System checks of the ``USER_TASKS_*`` settings (``manage.py check``), and the same checks at run time.

Each setting has one check id (``user_tasks.E001`` ...) and one message naming the setting,
the value found and what is expected.  ``validate(*names)`` raises ``ImproperlyConfigured``
with that message: the purge and the reaper call it first, so a wrong value stops them
with the check's words instead of a bare TypeError, and never deletes a row early.

Layer: leaf (above ``conf``, whose values it checks).  The purge and the reaper call
``validate``; ``UserTasksConfig.ready()`` registers the check.
"""
import numbers
from datetime import timedelta

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from user_tasks.conf import settings

FINAL_STATES = ('Succeeded', 'Failed', 'Canceled')


def _number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive_timedelta(value):
    return isinstance(value, timedelta) and value > timedelta(0)


def _positive_duration(value):
    """A positive timedelta, or a positive number of seconds."""
    return _positive_timedelta(value) or (_number(value) and value > 0)


def _importable(path):
    try:
        import_string(path)
    except ImportError:
        return False
    return True


def _classes(value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return False
    return all(isinstance(item, type) or (isinstance(item, str) and _importable(item)) for item in value)


def _max_age_by_state(value):
    return isinstance(value, dict) and all(
        state in FINAL_STATES and _positive_timedelta(age) for state, age in value.items())


def _terminate_after(value):
    return isinstance(value, dict) and all(
        isinstance(name, str) and _number(grace) and grace >= 0 for name, grace in value.items())


def _count_of_at_least_one(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _max_active_per_user(value):
    return isinstance(value, dict) and all(
        isinstance(name, str) and (limit is None or (isinstance(limit, int) and not isinstance(limit, bool)
                                                     and limit >= 0))
        for name, limit in value.items())


#: setting -> (check id, test of the value, what is expected)
RULES = {
    'USER_TASKS_MAX_AGE': ('E001', _positive_timedelta, 'a positive datetime.timedelta'),
    'USER_TASKS_STATUS_FILTERS': ('E002', _classes, 'a list or tuple of filter backend classes or import paths'),
    'USER_TASKS_ARTIFACT_FILTERS': ('E003', _classes, 'a list or tuple of filter backend classes or import paths'),
    'USER_TASKS_ARTIFACT_STORAGE': ('E004', lambda v: v is None or (isinstance(v, str) and _importable(v)),
                                    'None or the import path of a storage class'),
    'USER_TASKS_HEARTBEAT_INTERVAL': ('E005', lambda v: _number(v) and v > 0, 'a positive number of seconds'),
    'USER_TASKS_STALE_AFTER': ('E006', _positive_duration, 'a positive datetime.timedelta or number of seconds'),
    'USER_TASKS_PENDING_TIMEOUT': ('E007', _positive_duration, 'a positive datetime.timedelta or number of seconds'),
    'USER_TASKS_MAX_AGE_BY_STATE': ('E008', _max_age_by_state,
                                    'a dict mapping Succeeded, Failed or Canceled to a positive datetime.timedelta'),
    'USER_TASKS_PURGE_BATCH_SIZE': ('E009', lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                                    'an integer of at least 1'),
    'USER_TASKS_TERMINATE_AFTER': ('E010', _terminate_after,
                                   'a dict mapping task names to a number of seconds (0 or more)'),
    'USER_TASKS_PUBLISH_ON_COMMIT': ('E011', lambda v: isinstance(v, bool), 'True or False'),
    'USER_TASKS_METRICS_PORT': ('E012', lambda v: v is None or (
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535), 'None or a TCP port (1-65535)'),
    'USER_TASKS_METRICS_TOKEN': ('E013', lambda v: v is None or (isinstance(v, str) and v != ''),
                                 'None or a non-empty string'),
    'USER_TASKS_ARTIFACT_DOWNLOADS': ('E014', lambda v: isinstance(v, bool), 'True or False'),
    'USER_TASKS_MAX_ACTIVE_PER_USER': ('E015', _max_active_per_user,
                                       'a dict mapping task names to None or an integer of at least 0'),
    'USER_TASKS_RETRY_ARGUMENTS_MAX_BYTES': ('E016', _count_of_at_least_one, 'an integer of at least 1'),
    'USER_TASKS_METRICS_ADDRESS': ('E020', lambda v: isinstance(v, str) and v.strip() != '',
                                   'the address the worker exporter listens on (a non-empty string)'),
    'USER_TASKS_METRICS_DATABASE_GAUGES': ('E021', lambda v: isinstance(v, bool), 'True or False'),
    'USER_TASKS_TRACE_EXCEPTION_MESSAGES': ('E022', lambda v: isinstance(v, bool), 'True or False'),
}


def _raw(name):
    """The value as configured (class lists unresolved); None when unset (the default applies)."""
    overrides = settings._overrides  # noqa: SLF001  user_tasks.conf's own map of assigned values
    if name in overrides:
        return overrides[name]
    return getattr(django_settings, name, None)


def problem(name):
    """The message for a wrong value of setting ``name``, or None when it is fine."""
    check_id, valid, expected = RULES[name]
    value = _raw(name)
    # None means "use the default" for every setting (user_tasks.conf); a default is valid,
    # and is not built here (the default filters import DRF, which a host may not have).
    if value is None or valid(value):
        return None
    return check_id, f'{name} must be {expected}; it is {value!r}.'


def validate(*names):
    """Raise ``ImproperlyConfigured`` (with the system check's message) if any of ``names`` is wrong."""
    for name in names:
        found = problem(name)
        if found is not None:
            raise ImproperlyConfigured(f'{found[1]} (user_tasks.{found[0]})')


def check_settings(app_configs=None, **kwargs):  # noqa: ARG001  Django's check signature
    """The system check: one error per wrong ``USER_TASKS_*`` setting."""
    errors = []
    for name in RULES:
        found = problem(name)
        if found is not None:
            errors.append(checks.Error(found[1], hint=f'Fix {name} in your Django settings.',
                                       id=f'user_tasks.{found[0]}'))
    return errors


def register():
    """Register the system check (idempotent: Django keeps a set)."""
    checks.register(check_settings, checks.Tags.compatibility)

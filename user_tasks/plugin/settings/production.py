"""
Production settings from the plugin: take the operator's overrides from the host.

edx-platform's production settings load the YAML config (Tutor writes it) before calling
``add_plugins(..., 'production')``.  Older releases keep it in the ``ENV_TOKENS`` dict;
newer ones put the keys straight into the settings module.  Either way a value for one of
the names below wins over the plugin's defaults.  YAML has no durations, so a number given
for a duration setting is read as seconds.
"""
from datetime import timedelta

#: Settings an operator may set from the host's YAML config.
OVERRIDABLE = (
    'USER_TASKS_MAX_AGE',
    'USER_TASKS_MAX_AGE_BY_STATE',
    'USER_TASKS_STALE_AFTER',
    'USER_TASKS_PENDING_TIMEOUT',
    'USER_TASKS_HEARTBEAT_INTERVAL',
    'USER_TASKS_PURGE_BATCH_SIZE',
    'USER_TASKS_TERMINATE_AFTER',
    'USER_TASKS_PUBLISH_ON_COMMIT',
    'USER_TASKS_ARTIFACT_STORAGE',
    'USER_TASKS_ARTIFACT_DOWNLOADS',
    'USER_TASKS_METRICS_PORT',
    'USER_TASKS_METRICS_TOKEN',
    'USER_TASKS_METRICS_ADDRESS',
    'USER_TASKS_METRICS_DATABASE_GAUGES',
    'USER_TASKS_TRACE_EXCEPTION_MESSAGES',
    'USER_TASKS_STATUS_FILTERS',
    'USER_TASKS_ARTIFACT_FILTERS',
)

#: Settings that hold a ``timedelta``; a plain number there means seconds.
DURATIONS = ('USER_TASKS_MAX_AGE', 'USER_TASKS_STALE_AFTER', 'USER_TASKS_PENDING_TIMEOUT')


def plugin_settings(settings):
    """Copy the operator's overrides into ``settings`` and turn numeric durations into timedeltas."""
    tokens = getattr(settings, 'ENV_TOKENS', None)
    if isinstance(tokens, dict):
        for name in OVERRIDABLE:
            if name in tokens:
                setattr(settings, name, tokens[name])
    for name in DURATIONS:
        value = getattr(settings, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(settings, name, timedelta(seconds=value))
    by_state = getattr(settings, 'USER_TASKS_MAX_AGE_BY_STATE', None)
    if isinstance(by_state, dict):
        settings.USER_TASKS_MAX_AGE_BY_STATE = {
            state: timedelta(seconds=age) if isinstance(age, (int, float)) and not isinstance(age, bool) else age
            for state, age in by_state.items()
        }

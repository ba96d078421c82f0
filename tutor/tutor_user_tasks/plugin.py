"""
The ``user-tasks`` Tutor plugin: ``tutor plugins enable user-tasks && tutor config save``.

What it renders, for ``tutor local`` and ``tutor k8s`` alike:

- the Open edX image installs django-user-tasks (``USER_TASKS_PIP_REQUIREMENT``: empty for
  this plugin's own version from PyPI, else a pip requirement such as a git URL, or the
  file name of a wheel put in ``env/build/openedx/user-tasks/wheels/``);
- the ``USER_TASKS_*`` Django settings from Tutor's config, for LMS and Studio, web and
  workers (``openedx-common-settings``), the beat schedule of the reaper and the purge;
- ``PROMETHEUS_MULTIPROC_DIR`` on a directory that is empty at each container start
  (compose ``tmpfs``, Kubernetes memory ``emptyDir``) for ``lms``, ``cms``, the workers and
  the beat;
- a ``cms-beat`` service / Deployment running ``celery beat`` (one per site), so the
  periodic jobs run in ``cms-worker``, whose metrics are scraped;
- the workers' metrics exporter on ``USER_TASKS_METRICS_PORT``, reachable inside the
  compose network or the cluster, behind ``USER_TASKS_METRICS_TOKEN``;
- under ``env/plugins/user-tasks/apps/``: Prometheus scrape configs (per container or
  pod), the alert rules and the Grafana dashboard.
"""
import os
import re
from glob import glob
from importlib import resources

from tutor import hooks

from .__about__ import __version__

HERE = os.path.abspath(os.path.dirname(__file__))
#: The library's own documentation, where the alerts' runbooks are.
DOCS_URL = 'https://django-user-tasks.readthedocs.io/en/latest/observability.html'
#: The dashboard's uid in ``monitoring/user_tasks.json``.
DASHBOARD_PATH = '/d/user-tasks/user-tasks'

hooks.Filters.CONFIG_DEFAULTS.add_items([
    ('USER_TASKS_VERSION', __version__),
    # Empty: django-user-tasks==USER_TASKS_VERSION from PyPI.  Else a pip requirement
    # ("git+https://...@<ref>") or a wheel file name in env/build/openedx/user-tasks/wheels/.
    ('USER_TASKS_PIP_REQUIREMENT', ''),
    # Studio's own default (edx-platform's cms/envs/common.py) for every service.
    ('USER_TASKS_MAX_AGE_DAYS', 7),
    ('USER_TASKS_STALE_AFTER_SECONDS', 600),
    ('USER_TASKS_PENDING_TIMEOUT_SECONDS', 86400),
    ('USER_TASKS_REAPER_INTERVAL_SECONDS', 300),
    ('USER_TASKS_PURGE_HOUR', 3),
    ('USER_TASKS_PURGE_MINUTE', 17),
    ('USER_TASKS_RUN_BEAT', True),
    ('USER_TASKS_METRICS_PORT', 9101),
    ('USER_TASKS_MULTIPROC_DIR', '/tmp/user-tasks-metrics'),
    ('USER_TASKS_SCRAPE_INTERVAL', '30s'),
    ('USER_TASKS_RUNBOOK_URL', DOCS_URL),
    # Your Grafana's base URL, for the alerts' dashboard links (relative links when empty).
    ('USER_TASKS_GRAFANA_URL', ''),
])
hooks.Filters.CONFIG_UNIQUE.add_items([
    ('USER_TASKS_METRICS_TOKEN', '{{ 32|random_string }}'),
])


def pip_install(requirement, version):
    """The Dockerfile instruction installing django-user-tasks (the ``user-tasks`` patch calls it)."""
    cache = '--mount=type=cache,target=/openedx/.cache/pip,sharing=shared'
    requirement = (requirement or '').strip()
    if not requirement:
        requirement = f'django-user-tasks=={version}'
    elif requirement.endswith('.whl') and '/' not in requirement and '://' not in requirement:
        # A wheel put in the build context (env/build/openedx/user-tasks/wheels/).
        if not re.fullmatch(r'[\w.+-]+\.whl', requirement):
            raise ValueError(f'USER_TASKS_PIP_REQUIREMENT: not a wheel file name: {requirement!r}')
        return (f'RUN --mount=type=bind,source=user-tasks/wheels,target=/tmp/user-tasks-wheels \\\n'
                f'    {cache} \\\n    $PIP_COMMAND install /tmp/user-tasks-wheels/{requirement}')
    if "'" in requirement:
        raise ValueError(f'USER_TASKS_PIP_REQUIREMENT may not contain a quote: {requirement!r}')
    return f"RUN {cache} \\\n    $PIP_COMMAND install '{requirement}'"


def _shipped(name):
    return (resources.files('tutor_user_tasks') / 'monitoring' / name).read_text(encoding='utf-8')


def alert_rules(runbook_url, grafana_url):
    """The library's alert rules, with the runbook links on ``runbook_url`` and absolute dashboard links."""
    text = _shipped('user_tasks.rules.yml')
    text = text.replace(f'{DOCS_URL}#', f"{runbook_url.rstrip('/')}#")
    if grafana_url:
        text = text.replace(f'dashboard_url: "{DASHBOARD_PATH}"',
                            f'dashboard_url: "{grafana_url.rstrip("/")}{DASHBOARD_PATH}"')
    return text


def dashboard():
    """The library's Grafana dashboard JSON, as shipped."""
    return _shipped('user_tasks.json')


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_items([
    ('user_tasks_pip_install', pip_install),
    ('user_tasks_alert_rules', alert_rules),
    ('user_tasks_dashboard', dashboard),
])

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(str(resources.files('tutor_user_tasks') / 'templates'))
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items([
    ('user-tasks/apps', 'plugins'),           # env/plugins/user-tasks/apps/{prometheus,grafana}/
    ('user-tasks/wheels', 'build/openedx'),   # env/build/openedx/user-tasks/wheels/ (image build context)
])

for path in sorted(glob(os.path.join(HERE, 'patches', '*'))):
    with open(path, encoding='utf-8') as patch_file:
        hooks.Filters.ENV_PATCHES.add_item((os.path.basename(path), patch_file.read()))

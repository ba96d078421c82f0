"""
Production settings of the host, as edx-platform's ``envs/production.py``: common, then the
operator's YAML config (here JSON in ``OPENEDX_HOST_ENV_TOKENS``) both as the legacy
``ENV_TOKENS`` dict and straight into the module, then the plugins' ``production``.
"""
import json
import os

from edx_django_utils.plugins import add_plugins

from .common import *  # noqa: F401,F403
from .common import PROJECT_TYPE

ENV_TOKENS = json.loads(os.environ.get('OPENEDX_HOST_ENV_TOKENS') or '{}')
_YAML_TOKENS = json.loads(os.environ.get('OPENEDX_HOST_YAML_TOKENS') or '{}')
vars().update(_YAML_TOKENS)

add_plugins(__name__, PROJECT_TYPE, 'production')

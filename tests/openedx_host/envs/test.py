"""Test settings of the host, as edx-platform's ``envs/test.py``: common, then the plugins' ``test``."""
from edx_django_utils.plugins import add_plugins

from .common import *  # noqa: F401,F403
from .common import PROJECT_TYPE

add_plugins(__name__, PROJECT_TYPE, 'test')

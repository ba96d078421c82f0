"""
Settings of the host as Tutor layers them: production, then the settings Tutor rendered.

Tutor's ``{lms,cms}/envs/tutor/production.py`` starts with ``from cms.envs.production
import *`` (which has run the plugins' settings) and then applies its partials and
patches.  Here the rendered part to apply is a file whose path is in
``OPENEDX_HOST_TUTOR_SETTINGS`` (tests/test_tutor_plugin.py extracts the tutor-contrib-user-tasks
blocks of a real render into it), executed in this module's namespace as Tutor's would be.
"""
import os

from .production import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import

_RENDERED = os.environ['OPENEDX_HOST_TUTOR_SETTINGS']
with open(_RENDERED, encoding='utf-8') as _stream:
    exec(compile(_stream.read(), _RENDERED, 'exec'))  # noqa: S102  pylint: disable=exec-used

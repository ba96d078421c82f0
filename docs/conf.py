"""Sphinx configuration for django-user-tasks.

No autodoc yet: documenting the modules would need a configured Django project.
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    """Read __version__ from the package source without importing it."""
    path = os.path.join(HERE, '..', 'user_tasks', '__init__.py')
    try:
        with open(path, encoding='utf-8') as handle:
            match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", handle.read(), re.MULTILINE)
    except OSError:
        match = None
    return match.group(1) if match else 'unknown'


project = 'django-user-tasks'
author = 'user_tasks maintainers'
copyright = 'the django-user-tasks authors'  # noqa: A001 (Sphinx's name)
release = _version()
version = '.'.join(release.split('.')[:2])

extensions = []
templates_path = []
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
master_doc = 'index'

try:
    import sphinx_rtd_theme  # noqa: F401
    html_theme = 'sphinx_rtd_theme'
except ImportError:
    html_theme = 'alabaster'
html_static_path = []

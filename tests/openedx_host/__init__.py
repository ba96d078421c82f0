"""
A miniature Open edX host (LMS or Studio) that loads plugins exactly as edx-platform does.

Chosen by environment variables, read by ``envs/common.py``:

- ``OPENEDX_HOST_PROJECT``: ``cms`` (default) or ``lms``;
- ``OPENEDX_HOST_LAYOUT``: ``plugin`` (default), where only the plugin entry point brings
  user_tasks in and the Celery app reads ``CELERY_``-namespaced settings, or
  ``edx-platform``, where ``'user_tasks'`` is already in INSTALLED_APPS, Studio mounts
  ``user_tasks.urls`` itself and the Celery app reads old-style names without a namespace;
- ``OPENEDX_HOST_DIR``: folder for the SQLite file, the filesystem broker and media;
- ``OPENEDX_HOST_EXAMPLE=1``: also install the Studio-shaped export example (``example``).

The Celery app is ``tests.openedx_host.celery:app`` (``celery -A tests.openedx_host.celery``).
Unlike edx-platform's ``lms/__init__.py``, this package does not import it: the unit test
process imports ``tests.openedx_host.runner``, and a second Celery app created there would
become the current app of the whole pytest run.
"""

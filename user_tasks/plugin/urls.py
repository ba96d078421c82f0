"""
URLs the plugin adds to LMS and Studio (mounted at the site root, see ``apps.py``).

- ``api/tasks/v0/``: the REST API with its un-namespaced names (``usertaskstatus-detail``
  and friends), which Studio's ``cms_user_tasks`` reverses.  In Studio, edx-platform's own
  ``api/tasks/v0/`` include comes first and answers; this copy serves the LMS.
- ``user_tasks/``: the status pages (namespace ``user_tasks``) and ``user_tasks/metrics``.

Layer: wiring.  Includes the adapters' URL modules by name.
"""
from django.urls import include, path

urlpatterns = [
    path('api/tasks/v0/', include('user_tasks.urls')),
    path('user_tasks/', include('user_tasks.page_urls')),
    path('user_tasks/', include('user_tasks.metrics.urls')),
]

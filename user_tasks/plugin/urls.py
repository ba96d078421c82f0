"""
URLs the plugin mounts in LMS and Studio under ``api/tasks/v0/`` (see ``apps.py``).

The REST API keeps its un-namespaced names (``usertaskstatus-detail`` and friends),
which Studio's ``cms_user_tasks`` reverses.  In Studio, edx-platform's own
``api/tasks/v0/`` include comes first and answers; this copy then only serves routes
that include lacks.
"""
from django.urls import include, path

urlpatterns = [
    path('', include('user_tasks.urls')),
]

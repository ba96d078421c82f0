"""
URLs of the REST API (un-namespaced; Studio mounts them at ``api/tasks/v0/``).

``tasks/``, ``tasks/<uuid>/``, ``tasks/<uuid>/cancel/``, ``artifacts/`` and
``artifacts/<uuid>/``, named ``usertaskstatus-*`` and ``usertaskartifact-*``.

Layer: adapters.  Imports the views and ``user_tasks.metrics.api``; nothing imports it (hosts include it).
"""
from rest_framework.routers import SimpleRouter

from user_tasks.metrics.api import instrument_urls
from user_tasks.views import ArtifactViewSet, StatusViewSet

ROUTER = SimpleRouter()
ROUTER.register(r'tasks', StatusViewSet, basename='usertaskstatus')
ROUTER.register(r'artifacts', ArtifactViewSet, basename='usertaskartifact')

# Each view is counted in user_tasks_api_requests_total (see user_tasks.metrics.api).
urlpatterns = instrument_urls(ROUTER.urls)

"""The test project's URLs plus a stand-in for the pages' artifact download view (REST ``file`` tests)."""
from django.http import HttpResponse
from django.urls import include, path

from tests.urls import urlpatterns as base_patterns

download_patterns = ([
    path('artifacts/<uuid:uuid>/download/', lambda request, uuid: HttpResponse(), name='artifact-download'),
], 'user_tasks')

urlpatterns = [
    path('downloads/', include(download_patterns)),
    *[pattern for pattern in base_patterns if 'user_tasks' not in str(pattern.pattern)],
]

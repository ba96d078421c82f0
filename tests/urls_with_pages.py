"""The test project's URLs plus the status pages at ``user_tasks/`` (page and browser tests)."""
from django.urls import include, path

from tests.urls import urlpatterns as base_patterns

urlpatterns = [
    *base_patterns,
    path('user_tasks/', include('user_tasks.page_urls')),
]

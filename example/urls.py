"""Demo URLs: the admin, the user_tasks REST API where Studio mounts it, the status pages and metrics."""
from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path('admin/', admin.site.urls),
    path('api/tasks/v0/', include('user_tasks.urls')),
    path('user_tasks/', include('user_tasks.page_urls')),  # "my tasks" and one page per task
    path('', RedirectView.as_view(pattern_name='user_tasks:task-list', permanent=False)),
    path('', include('example.studio_urls')),  # Studio's export page endpoints
]

# /user_tasks/metrics (staff or a bearer token), when the package has its metrics view.
if find_spec('user_tasks.metrics.urls') is not None:
    urlpatterns.append(path('user_tasks/', include('user_tasks.metrics.urls')))

"""URLs of the test project."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path('admin/', admin.site.urls),
]
try:  # the REST API lands with its own issue
    urlpatterns.append(path('api/tasks/v0/', include('user_tasks.urls')))
except ImportError:  # pragma: no cover
    pass

"""URLs of the test project."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path('admin/', admin.site.urls),
    path('api/tasks/v0/', include('user_tasks.urls')),
    path('user_tasks/', include('user_tasks.metrics.urls')),
]

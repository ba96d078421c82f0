"""Demo URLs: the admin and the user_tasks REST API where Studio mounts it."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path('admin/', admin.site.urls),
    path('api/tasks/v0/', include('user_tasks.urls')),
]

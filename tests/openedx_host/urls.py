"""
The host's URLs, in edx-platform's order: core routes first, then the plugins' routes.

In the edx-platform layout Studio mounts ``user_tasks.urls`` at ``api/tasks/v0/`` itself
(``cms/urls.py``); LMS does not.
"""
from django.conf import settings
from django.urls import include, path
from edx_django_utils.plugins import get_plugin_url_patterns

urlpatterns = []
if settings.HOST_LAYOUT == 'edx-platform' and settings.HOST_PROJECT == 'cms':
    urlpatterns.append(path('api/tasks/v0/', include('user_tasks.urls')))
if settings.HOST_WITH_EXAMPLE:
    urlpatterns.append(path('', include('example.studio_urls')))

urlpatterns.extend(get_plugin_url_patterns(settings.PROJECT_TYPE))

"""
URLs of the status pages, namespace ``user_tasks``, mounted by hosts at ``user_tasks/``.

Example::

    path('user_tasks/', include('user_tasks.page_urls')),

``user_tasks/`` lists the user's tasks, ``user_tasks/<uuid>/`` shows one, and
``user_tasks/artifacts/<uuid>/download/`` streams an artifact's file (the REST ``file`` field
points there when ``USER_TASKS_ARTIFACT_DOWNLOADS`` is on).  The metrics view
(``user_tasks.metrics.urls``) mounts under the same prefix without clashing.

Layer: adapters.  Imports ``user_tasks.pages``; nothing imports it (hosts include it).
"""
from django.urls import path

from user_tasks.pages import views

app_name = 'user_tasks'

urlpatterns = [
    path('', views.task_list, name='task-list'),
    path('<uuid:uuid>/', views.task_detail, name='task-detail'),
    path('<uuid:uuid>/poll/', views.task_poll, name='task-poll'),
    path('<uuid:uuid>/cancel/', views.task_cancel, name='task-cancel'),
    path('<uuid:uuid>/retry/', views.task_retry, name='task-retry'),
    path('artifacts/<uuid:uuid>/download/', views.artifact_download, name='artifact-download'),
]

"""
URLs of the status pages, namespace ``user_tasks``; hosts mount them at ``user_tasks/``::

    path('user_tasks/', include('user_tasks.page_urls')),

``user_tasks/`` lists the user's tasks, ``user_tasks/<uuid>/`` shows one, and
``user_tasks/artifacts/<uuid>/download/`` streams an artifact's file (the REST ``file`` field
points there when ``USER_TASKS_ARTIFACT_DOWNLOADS`` is on).  The metrics view
(``user_tasks.metrics.urls``) mounts under the same prefix without clashing.
"""
from django.urls import path

from user_tasks import pages

app_name = 'user_tasks'

urlpatterns = [
    path('', pages.task_list, name='task-list'),
    path('<uuid:uuid>/', pages.task_detail, name='task-detail'),
    path('<uuid:uuid>/poll/', pages.task_poll, name='task-poll'),
    path('<uuid:uuid>/cancel/', pages.task_cancel, name='task-cancel'),
    path('<uuid:uuid>/retry/', pages.task_retry, name='task-retry'),
    path('artifacts/<uuid:uuid>/download/', pages.artifact_download, name='artifact-download'),
]

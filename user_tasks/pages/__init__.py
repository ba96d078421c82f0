"""
The human status pages (``user_tasks.page_urls`` routes them).

``views`` holds the views (loading rows, permissions, HTTP caching) and ``presenters``
what they show.  The views and their settings are importable from here too, as they
were when the pages were one module: ``user_tasks.pages.task_list``,
``user_tasks.pages.PAGE_SIZE``...
"""
from user_tasks.pages.views import (
    CANCEL_STATUS,
    ERROR_TEXT_LIMIT,
    PAGE_SIZE,
    POLL_INTERVAL_MS,
    STANDARD_STATES,
    TASK_CLASS_SAMPLE,
    VIEW_ARTIFACT,
    VIEW_STATUS,
    artifact_download,
    task_cancel,
    task_detail,
    task_list,
    task_poll,
)

__all__ = [
    'CANCEL_STATUS', 'ERROR_TEXT_LIMIT', 'PAGE_SIZE', 'POLL_INTERVAL_MS', 'STANDARD_STATES', 'TASK_CLASS_SAMPLE',
    'VIEW_ARTIFACT', 'VIEW_STATUS', 'artifact_download', 'task_cancel', 'task_detail', 'task_list', 'task_poll',
]

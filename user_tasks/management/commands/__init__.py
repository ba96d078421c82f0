"""``purge_old_user_tasks`` and ``reap_stale_user_tasks``, for sites that run no Celery beat."""

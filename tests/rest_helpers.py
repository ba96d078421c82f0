"""Helpers of the REST, admin and OpenAPI tests: rows created directly, no Celery."""
from user_tasks.models import UserTaskArtifact, UserTaskStatus

#: Where tests/urls.py mounts the REST API.
API = '/api/tasks/v0/'


def create_status(user, n=1, **fields):
    """A status row owned by ``user`` (no Celery involved)."""
    values = {'user': user, 'task_id': f'{user.username}-task-{n}', 'task_class': 'tests.tasks.sample_task',
              'name': f'Task {n} of {user.username}', 'total_steps': 4}
    values.update(fields)
    return UserTaskStatus.objects.create(**values)


def create_artifact(status, **fields):
    values = {'status': status, 'name': 'Output', 'text': 'some output'}
    values.update(fields)
    return UserTaskArtifact.objects.create(**values)

"""Fixtures shared by the REST, admin and OpenAPI tests: users with fixed roles and their tasks."""
import pytest
from rest_framework.test import APIClient

from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.rules import add_rules

API = '/api/tasks/v0/'


@pytest.fixture
def rules_added():
    """The owner-or-superuser rules, as a host registers them."""
    add_rules()


@pytest.fixture
def owner(django_user_model, rules_added):  # pylint: disable=unused-argument
    return django_user_model.objects.create_user('owner', 'owner@example.com', 'owner-pw')


@pytest.fixture
def stranger(django_user_model, rules_added):  # pylint: disable=unused-argument
    return django_user_model.objects.create_user('stranger', 'stranger@example.com', 'stranger-pw')


@pytest.fixture
def superuser(django_user_model, rules_added):  # pylint: disable=unused-argument
    return django_user_model.objects.create_superuser('root', 'root@example.com', 'root-pw')


@pytest.fixture
def api():
    """A client with no user; ``api.force_authenticate(user)`` to act as someone."""
    return APIClient()


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

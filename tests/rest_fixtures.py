"""Fixtures shared by the REST, admin and OpenAPI tests (a pytest plugin: ``pytest_plugins``)."""
import pytest
from rest_framework.test import APIClient

from tests.rest_helpers import API, create_artifact, create_status  # noqa: F401  (re-exported for older imports)
from user_tasks.rules import add_rules


@pytest.fixture
def rules_added():
    """The owner-or-superuser rules, as a host registers them."""
    add_rules()


@pytest.fixture
def owner(django_user_model, rules_added):
    return django_user_model.objects.create_user('owner', 'owner@example.com', 'owner-pw')


@pytest.fixture
def stranger(django_user_model, rules_added):
    return django_user_model.objects.create_user('stranger', 'stranger@example.com', 'stranger-pw')


@pytest.fixture
def superuser(django_user_model, rules_added):
    return django_user_model.objects.create_superuser('root', 'root@example.com', 'root-pw')


@pytest.fixture
def api():
    """A client with no user; ``api.force_authenticate(user)`` to act as someone."""
    return APIClient()


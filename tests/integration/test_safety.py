"""
Bad input on the real database: a NUL byte in a filter is a 400 (REST API,
pages) or the admin's invalid-filter redirect, never PostgreSQL's 500.

The requests go through Django's full request handling (test client) against the
integration database; ``test_the_database_itself_refuses_nul`` shows, on PostgreSQL, what
an unguarded filter would run into.
"""
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from user_tasks.models import UserTaskStatus
from user_tasks.rules import add_rules

pytestmark = [pytest.mark.django_db, pytest.mark.urls('tests.urls_with_pages')]

NUL_QUERIES = ['scope=all&state=%00', 'scope=all&task_class=a%00b', 'scope=all&user=%00', 'state=%00']


@pytest.fixture
def root(integration_services):
    add_rules()
    user = get_user_model().objects.create_superuser('nul-root', 'nul@example.com', 'pw')
    UserTaskStatus.objects.create(user=user, task_id='nul-1', task_class='tests.tasks.sample_task',
                                  name='one', total_steps=1)
    return user


def test_the_database_itself_refuses_nul(root):
    if connection.vendor != 'postgresql':
        pytest.skip('only PostgreSQL refuses a NUL in a text comparison')
    with pytest.raises(ValueError, match='NUL'):  # psycopg refuses it before the server sees it
        with transaction.atomic():
            list(UserTaskStatus.objects.filter(state='\x00'))


@pytest.mark.parametrize('query', NUL_QUERIES)
def test_rest_api_refuses_nul(root, query):
    api = APIClient()
    api.force_authenticate(root)
    for route in ('tasks/', 'artifacts/'):
        response = api.get(f'/api/tasks/v0/{route}?{query}')
        assert response.status_code == 400, (route, response.status_code)
        assert 'NUL' in response.json()['detail']


@pytest.mark.parametrize('query', NUL_QUERIES)
def test_pages_refuse_nul(root, query):
    client = Client()
    client.force_login(root)
    response = client.get(f'/user_tasks/?{query}')
    assert response.status_code == 400
    assert client.get('/user_tasks/?scope=all&state=Pending').status_code == 200


@pytest.mark.parametrize('model', ['usertaskstatus', 'usertaskartifact'])
@pytest.mark.parametrize('query', ['state=%00', 'task_class=%00', 'q=%00', 'q=a%00b'])
def test_admin_treats_nul_as_an_invalid_filter(root, model, query):
    client = Client()
    client.force_login(root)
    response = client.get(f'/admin/user_tasks/{model}/?{query}')
    assert response.status_code == 302 and response['Location'].endswith('?e=1')

"""
Issue 16's "Try again" and its refusals read in the user's language (Accept-Language).

Rows are published to a queue nothing consumes and ended by hand, as in tests/test_retrying.py.
"""
import pytest
from django.test import Client
from django.urls import reverse

from tests.rest_fixtures import API, api, owner, rules_added  # noqa: F401
from tests.test_retrying import ended
from tests.unit_tasks import parked_task
from user_tasks.models import UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls('tests.urls_with_pages')]


def test_try_again_button_and_link_are_translated(owner):  # noqa: F811
    old = ended(parked_task, owner, label='report')
    client = Client(HTTP_ACCEPT_LANGUAGE='fr')
    client.force_login(owner)
    html = client.get(reverse('user_tasks:task-detail', kwargs={'uuid': old.uuid})).content.decode()
    assert '>Réessayer</button>' in html
    response = client.post(reverse('user_tasks:task-retry', kwargs={'uuid': old.uuid}), follow=True)
    assert response.status_code == 200
    html = client.get(reverse('user_tasks:task-detail', kwargs={'uuid': old.uuid})).content.decode()
    assert 'Cette tâche a été relancée\u00a0: voir la nouvelle tâche' in html


def test_refusals_are_translated(api, owner):  # noqa: F811
    done = ended(parked_task, owner, UserTaskStatus.SUCCEEDED, label='report')
    api.force_authenticate(owner)
    response = api.post(f'{API}tasks/{done.uuid}/retry/', HTTP_ACCEPT_LANGUAGE='de')
    assert response.status_code == 409
    assert response.json()['detail'] == ('Diese Aufgabe war erfolgreich; nur eine fehlgeschlagene oder '
                                         'abgebrochene Aufgabe kann erneut versucht werden.')
    response = api.post(f'{API}tasks/{done.uuid}/retry/', HTTP_ACCEPT_LANGUAGE='ar')
    assert response.json()['detail'] == 'نجحت هذه المهمة؛ لا يمكن إعادة المحاولة إلا لمهمة فشلت أو أُلغيت.'

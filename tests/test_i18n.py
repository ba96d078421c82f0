"""
Everything a user reads follows their language (Accept-Language, through the host's LocaleMiddleware).

Translatable stages (``set_state(msgid, **params)``), stored so that 4.0 readers still see
English in ``state``; the API's ``state_text`` with the raw message id and parameters; the
pages (stage, steps line with plural forms, the library's Error texts); the admin's labels,
actions and messages; the REST API's own error messages.
"""
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_noop

from tests.rest_fixtures import (  # noqa: F401
    API,
    api,
    create_artifact,
    create_status,
    owner,
    rules_added,
    stranger,
    superuser,
)
from user_tasks import recovery, stages
from user_tasks.models import UserTaskStatus

pytestmark = pytest.mark.django_db

S = UserTaskStatus


def db(status):
    return S.objects.get(pk=status.pk)


def client_for(user, language):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(user)
    return client


# -- storage: English for every reader, the message for each language ---------------------

def test_a_stage_with_parameters_is_stored_in_english_with_its_message(owner):  # noqa: F811
    status = create_status(owner, state=S.IN_PROGRESS)
    with translation.override('fr'):  # the worker's language never leaks into the row
        status.set_state(stages.ITEMS, done=3, total=12)
    row = db(status)
    assert row.state == 'Processing item 3 of 12'
    assert (row.state_msgid, row.state_params) == (stages.ITEMS, {'done': 3, 'total': 12})
    assert row.state_message == (stages.ITEMS, {'done': 3, 'total': 12})
    with translation.override('fr'):
        assert row.state_text == 'Traitement de l’élément 3 sur 12'
    with translation.override('de'):
        assert row.state_text == 'Element 3 von 12 wird verarbeitet'
    with translation.override('en'):
        assert row.state_text == 'Processing item 3 of 12'


def test_a_stage_without_parameters_is_its_own_message_id(owner):  # noqa: F811
    """Studio's ``set_state('Exporting')``, unchanged, reads in the user's language."""
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state('Exporting')
    row = db(status)
    assert (row.state, row.state_msgid, row.state_params) == ('Exporting', None, None)
    assert row.state_message == ('Exporting', {})
    with translation.override('fr'):
        assert row.state_text == 'Exportation'
    with translation.override('ar'):
        assert row.state_text == 'جارٍ التصدير'
    # A custom text no catalog knows stays as it is.
    status.set_state('Indexing the forum')
    with translation.override('fr'):
        assert db(status).state_text == 'Indexing the forum'


def test_a_plain_stage_replaces_the_message_of_the_previous_one(owner):  # noqa: F811
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state(stages.ITEMS, done=1, total=2)
    status.set_state(stages.COMPRESSING)
    row = db(status)
    assert (row.state, row.state_msgid, row.state_params) == ('Compressing', None, None)
    with translation.override('es'):
        assert row.state_text == 'Comprimiendo'


def test_a_state_written_by_a_4_0_process_wins_over_a_stale_message(owner):  # noqa: F811
    """A reader trusts the message only while ``state`` is still its English text."""
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state(stages.ITEMS, done=1, total=2)
    S.objects.filter(pk=status.pk).update(state='Verifying')  # 4.0 code knows nothing of state_msgid
    row = db(status)
    assert row.state_message == ('Verifying', {})
    with translation.override('pt-br'):
        assert row.state_text == 'Verificando'
    S.objects.filter(pk=status.pk).update(state=S.SUCCEEDED)
    with translation.override('fr'):
        assert str(db(status).state_text) == 'Réussie'
    assert db(status).state_message == (S.SUCCEEDED, {})


def test_the_english_text_is_cut_to_the_column(owner):  # noqa: F811
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state(gettext_noop('Importing %(names)s'), names=', '.join(['a-long-library-name'] * 20))
    row = db(status)
    assert len(row.state) == 128 and row.state.startswith('Importing a-long-library-name, ')
    assert row.state_message[0] == 'Importing %(names)s'  # still recognised as the same message


def test_a_chain_parent_shows_the_translated_stage_too(owner):  # noqa: F811
    chain = create_status(owner, 1, task_class='celery.chain', is_container=True, state=S.IN_PROGRESS)
    child = create_status(owner, 2, parent=chain, state=S.IN_PROGRESS)
    child.set_state(stages.ITEMS, done=2, total=5)
    with translation.override('fr'):
        assert db(chain).state_text == 'Traitement de l’élément 2 sur 5'
    assert db(chain).state == 'Processing item 2 of 5'


@pytest.mark.parametrize(('params', 'error'), [
    ({'done': 1}, KeyError),                           # a placeholder without its value
    ({'done': object(), 'total': 2}, TypeError),       # a value JSON cannot store
])
def test_bad_parameters_are_refused_before_anything_is_written(owner, params, error):  # noqa: F811
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state('Exporting')
    with pytest.raises(error):
        status.set_state(stages.ITEMS, **params)
    assert db(status).state == 'Exporting'


def test_without_parameters_a_percent_sign_is_plain_text(owner):  # noqa: F811
    """As in 4.0: a text set with no parameters is stored and shown as it is."""
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state('50% of the files copied')
    with translation.override('fr'):
        assert db(status).state_text == '50% of the files copied'


def test_a_broken_translation_falls_back_to_english():
    from user_tasks import localized
    assert localized.render('%(count)s files', {'count': 3}, translate=False) == '3 files'
    assert localized.render('', {}) == ''  # never the catalog's header
    assert localized.stored_message('Compressing 3 files', 'Compressing %(count)s files', {}) == \
        ('Compressing 3 files', {})


# -- the REST API -----------------------------------------------------------------------------

def test_the_api_follows_accept_language_and_gives_the_message(api, owner):  # noqa: F811
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state(stages.ITEMS, done=3, total=12)
    failed = create_status(owner, 2, state=S.FAILED)
    api.force_authenticate(owner)
    listed = api.get(f'{API}tasks/?include=state_message', HTTP_ACCEPT_LANGUAGE='fr').json()
    rows = {row['name']: row for row in listed}
    row = rows[status.name]
    assert row['state'] == 'Processing item 3 of 12'
    assert row['state_text'] == 'Traitement de l’élément 3 sur 12'
    assert (row['state_msgid'], row['state_params']) == ('Processing item %(done)s of %(total)s',
                                                         {'done': 3, 'total': 12})
    assert (rows[failed.name]['state'], rows[failed.name]['state_text']) == ('Failed', 'Échouée')
    assert (rows[failed.name]['state_msgid'], rows[failed.name]['state_params']) == ('Failed', {})
    for language, text in (('de', 'Element 3 von 12 wird verarbeitet'), ('ar', 'جارٍ معالجة العنصر 3 من 12'),
                           ('pt-BR', 'Processando o item 3 de 12'), ('en', 'Processing item 3 of 12')):
        response = api.get(f'{API}tasks/{status.uuid}/', HTTP_ACCEPT_LANGUAGE=language)
        assert response.json()['state_text'] == text, language
        assert response['Content-Language'] == language.lower()


def test_chinese_follows_open_edx_language_codes(api, owner, settings):  # noqa: F811
    """The catalog is zh_CN, as Open edX names it: a host lists 'zh-cn' in LANGUAGES, as edx-platform does."""
    settings.LANGUAGES = [('en', 'English'), ('zh-cn', '中文 (简体)')]
    status = create_status(owner, state=S.IN_PROGRESS)
    status.set_state(stages.ITEMS, done=3, total=12)
    api.force_authenticate(owner)
    response = api.get(f'{API}tasks/{status.uuid}/', HTTP_ACCEPT_LANGUAGE='zh-CN,zh;q=0.9')
    assert response.json()['state_text'] == '正在处理第 3 项，共 12 项'


def test_the_api_error_messages_are_translated(api, owner, settings):  # noqa: F811
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               'DEFAULT_PAGINATION_CLASS': 'rest_framework.pagination.LimitOffsetPagination'}
    create_status(owner)
    api.force_authenticate(owner)
    response = api.get(f'{API}tasks/', {'offset': '9' * 30}, HTTP_ACCEPT_LANGUAGE='fr')
    if response.status_code == 404:  # the database refused the offset: our message, in French
        assert response.json() == {'detail': 'Page non valide.'}
    missing = api.get(f'{API}tasks/00000000-0000-0000-0000-000000000000/', HTTP_ACCEPT_LANGUAGE='es')
    assert missing.status_code == 404 and missing.json()['detail'] != 'Not found.'


# -- the pages -------------------------------------------------------------------------------

@pytest.mark.urls('tests.urls_with_pages')
def test_the_task_page_shows_stage_steps_and_library_errors_in_the_language(owner):  # noqa: F811
    running = create_status(owner, 1, state=S.IN_PROGRESS, total_steps=1, name='Export of course-v1:X+Y+Z')
    running.set_state(stages.COMPRESSING)
    create_artifact(running, name='Output', text='12 fichiers')
    create_artifact(running, name='BrokenLinks', text='[]')  # a task's own name stays as it is
    lost = create_status(owner, 2, state=S.IN_PROGRESS, total_steps=3)
    lost.fail(recovery.WORKER_LOST_MESSAGE)
    french = client_for(owner, 'fr')
    html = french.get(reverse('user_tasks:task-detail', kwargs={'uuid': running.uuid})).content.decode()
    assert '<dd id="ut-stage">Compression</dd>' in html
    assert '0 sur 1 étape' in html and '0\u00a0% terminé' in html
    assert '<span class="ut-artifact-name">Résultat</span>' in html
    assert '<span class="ut-artifact-name">BrokenLinks</span>' in html
    snapshot = french.get(reverse('user_tasks:task-poll', kwargs={'uuid': running.uuid})).json()
    assert (snapshot['state_text'], snapshot['stage']) == ('En cours', 'Compression')
    html = french.get(reverse('user_tasks:task-detail', kwargs={'uuid': lost.uuid})).content.decode()
    assert 'Erreur\u00a0:' in html  # French typography: a no-break space before the colon
    assert 'La tâche s’est arrêtée de façon inattendue' in html
    assert '0 sur 3 étapes' in html
    # The stored text stays English for 4.0 readers (Studio reads the artifact itself).
    assert lost.artifacts.get().text == 'The task stopped unexpectedly (the worker process running it was lost).'
    arabic = client_for(owner, 'ar').get(reverse('user_tasks:task-detail', kwargs={'uuid': lost.uuid}))
    assert 'توقفت المهمة بشكل غير متوقع' in arabic.content.decode()
    assert '0 من 3 خطوات' in arabic.content.decode()


@pytest.mark.urls('tests.urls_with_pages')
def test_the_list_page_says_just_now_and_ago_in_the_language(owner):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone
    create_status(owner, 1, name='Fresh')
    old = create_status(owner, 2, name='Old')
    S.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(hours=3))
    html = client_for(owner, 'de').get('/user_tasks/').content.decode()
    assert 'gerade eben' in html and 'vor 3\xa0Stunden' in html
    assert '<html lang="de" dir="ltr">' in html


# -- the admin -------------------------------------------------------------------------------

def test_the_admin_speaks_the_language(superuser, owner):  # noqa: F811
    status = create_status(owner, state=S.PENDING)
    client = client_for(superuser, 'fr')
    html = client.get('/admin/user_tasks/usertaskstatus/').content.decode()
    for text in ('annuler les tâches sélectionnées', 'supprimer les tâches sélectionnées qui sont terminées',
                 'classe de tâche', 'progression', 'statut de tâche utilisateur', 'est un conteneur'):
        assert text in html.lower(), text
    assert '<td class="field-state_label">En attente</td>' in html
    from unittest import mock
    with mock.patch('user_tasks.signals.celery_app'):
        response = client.post('/admin/user_tasks/usertaskstatus/',
                               {'action': 'cancel_selected', '_selected_action': [status.pk]}, follow=True)
    assert '1 tâche annulée.' in response.content.decode()
    html = client.get(f'/admin/user_tasks/usertaskstatus/{status.pk}/change/').content.decode()
    assert 'Un nom de cette tâche que l’utilisateur qui l’a lancée comprendra' in html
    assert client.get('/admin/').content.decode().count('Tâches des utilisateurs') >= 1


@pytest.mark.urls('tests.urls_with_pages')
def test_refusals_and_cut_errors_are_in_the_language(api, owner):  # noqa: F811
    api.force_authenticate(owner)
    response = api.get(f'{API}tasks/', {'name': 'a\x00b'}, HTTP_ACCEPT_LANGUAGE='de')
    assert response.status_code == 400
    assert response.json() == {'detail': "Der Abfrageparameter 'name' enthält ein NUL-Zeichen."}
    page = client_for(owner, 'es').get('/user_tasks/', {'user': 'a\x00b'})
    assert page.status_code == 400 and page.content.decode() == 'Un filtro contiene un carácter NUL.'
    status = create_status(owner, state=S.IN_PROGRESS)
    status.fail('x' * 10003)
    html = client_for(owner, 'fr').get(reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})).content.decode()
    assert '[tronqué\u00a0: 3 caractères de plus]' in html
    html = client_for(owner, 'ar').get(reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})).content.decode()
    assert '[مقتطع: %d أحرف إضافية]' % 3 in html

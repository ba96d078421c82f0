"""The six state names are translated, from the compiled catalogs shipped in user_tasks/locale/."""
import os

import pytest
from django.utils import translation

from user_tasks.models import UserTaskStatus

LOCALE_DIR = os.path.join(os.path.dirname(__file__), '..', 'user_tasks', 'locale')

EXPECTED = {
    'fr': ['En attente', 'En cours', 'Réussie', 'Échouée', 'Annulée', 'Nouvelle tentative'],
    'es': ['Pendiente', 'En curso', 'Completada', 'Fallida', 'Cancelada', 'Reintentando'],
    'de': ['Ausstehend', 'In Bearbeitung', 'Erfolgreich', 'Fehlgeschlagen', 'Abgebrochen', 'Wird wiederholt'],
    'ar': ['قيد الانتظار', 'قيد التنفيذ', 'نجحت', 'فشلت', 'أُلغيت', 'إعادة المحاولة'],
    'zh-cn': ['等待中', '进行中', '已成功', '已失败', '已取消', '重试中'],
    'pt-br': ['Pendente', 'Em andamento', 'Concluída', 'Falhou', 'Cancelada', 'Tentando novamente'],
}
STATES = [UserTaskStatus.PENDING, UserTaskStatus.IN_PROGRESS, UserTaskStatus.SUCCEEDED,
          UserTaskStatus.FAILED, UserTaskStatus.CANCELED, UserTaskStatus.RETRYING]


@pytest.mark.parametrize('language', sorted(EXPECTED))
def test_state_text_is_translated(language):
    with translation.override(language):
        assert [str(UserTaskStatus(state=state).state_text) for state in STATES] == EXPECTED[language]
    # The stored state never changes with the language.
    assert [UserTaskStatus(state=state).state for state in STATES] == STATES


def test_english_and_custom_states_are_untouched():
    with translation.override('en'):
        assert [str(UserTaskStatus(state=state).state_text) for state in STATES] == STATES
    with translation.override('fr'):
        assert UserTaskStatus(state='Exporting').state_text == 'Exporting'


@pytest.mark.parametrize('language', ['fr', 'es', 'de', 'ar', 'zh_CN', 'pt_BR'])
def test_compiled_catalogs_are_shipped(language):
    base = os.path.join(LOCALE_DIR, language, 'LC_MESSAGES')
    assert os.path.getsize(os.path.join(base, 'django.mo')) > 0
    with open(os.path.join(base, 'django.po'), encoding='utf-8') as handle:
        catalog = handle.read()
    for state in STATES:
        assert f'msgid "{state}"' in catalog


def test_compiled_catalogs_match_their_sources():
    """Each .mo holds exactly the translations of its .po (recompile with `make translations`)."""
    import gettext
    for language in os.listdir(LOCALE_DIR):
        base = os.path.join(LOCALE_DIR, language, 'LC_MESSAGES')
        with open(os.path.join(base, 'django.mo'), 'rb') as handle:
            compiled = gettext.GNUTranslations(handle)
        entries = _parse_po(os.path.join(base, 'django.po'))
        assert entries, language
        for msgid, msgstr in entries.items():
            assert compiled.gettext(msgid) == msgstr, (language, msgid)


def test_state_text_in_the_api(client, django_user_model):
    user = django_user_model.objects.create_user('translated', 't@example.com', 'pw')
    UserTaskStatus.objects.create(user=user, task_id='tr-1', task_class='x', name='n', total_steps=1,
                                  state=UserTaskStatus.FAILED)
    client.force_login(user)
    with translation.override('de'):
        response = client.get('/api/tasks/v0/tasks/', HTTP_ACCEPT_LANGUAGE='de')
    row = response.json()[0]
    assert row['state'] == 'Failed'
    assert row['state_text'] == 'Fehlgeschlagen'


test_state_text_in_the_api = pytest.mark.django_db(test_state_text_in_the_api)


def _parse_po(path):
    """Msgid -> msgstr of a simple catalog (single-line entries, no plurals), header excluded."""
    entries, msgid = {}, None
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            if line.startswith('msgid "'):
                msgid = line[7:-2]
            elif line.startswith('msgstr "') and msgid:
                entries[msgid] = line[8:-2]
                msgid = None
    return entries

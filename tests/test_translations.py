"""
The shipped catalogs (user_tasks/locale/): complete, clean, compiled, and used.

The completeness test extracts the marked strings of the package afresh, as
``make extract_translations`` does (Django's ``makemessages``, i.e. GNU xgettext), and
fails for a marked string missing from a catalog, a string a catalog still holds but the
code no longer marks, an empty or fuzzy entry, a plural entry without every form of its
language, and a ``.mo`` that is not the compilation of its ``.po``.  Without xgettext it
skips saying so, and fails under ``CI=true`` (``.ci/run`` installs gettext).
"""
import os
import re
import shutil
import subprocess
import sys

import polib
import pytest
from django.utils import translation

from user_tasks.models import UserTaskStatus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCALE_DIR = os.path.join(ROOT, 'user_tasks', 'locale')
IN_CI = os.environ.get('CI', '').lower() == 'true'

#: The shipped languages and the plural rule of each (the CLDR/gettext rule its translators use).
PLURAL_FORMS = {
    'fr': 'nplurals=2; plural=(n > 1);',
    'es': 'nplurals=2; plural=(n != 1);',
    'de': 'nplurals=2; plural=(n != 1);',
    'ar': 'nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5);',
    'zh_CN': 'nplurals=1; plural=0;',
    'pt_BR': 'nplurals=2; plural=(n > 1);',
}
LANGUAGES = sorted(PLURAL_FORMS)

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


def _key(entry):
    return (entry.msgctxt, entry.msgid, entry.msgid_plural)


@pytest.fixture(scope='module')
def extracted(tmp_path_factory):
    """The package's marked strings, extracted now from a copy of its source (makemessages -l en)."""
    if shutil.which('xgettext') is None:
        message = 'GNU gettext (xgettext) is not installed (apt-get install gettext)'
        if IN_CI:
            pytest.fail(f'{message} (CI=true: the catalog completeness test must run)', pytrace=False)
        pytest.skip(message)
    copy = tmp_path_factory.mktemp('extract') / 'user_tasks'
    shutil.copytree(os.path.join(ROOT, 'user_tasks'), copy,
                    ignore=shutil.ignore_patterns('__pycache__', '*.mo', 'conf'))
    env = dict(os.environ, PYTHONPATH=ROOT, DJANGO_SETTINGS_MODULE='tests.settings')
    subprocess.run([sys.executable, '-m', 'django', 'makemessages', '-l', 'en', '-d', 'django',
                    '--no-location', '--no-obsolete'], cwd=copy, env=env, check=True, capture_output=True)
    source = polib.pofile(str(copy / 'locale' / 'en' / 'LC_MESSAGES' / 'django.po'))
    entries = {_key(entry): entry for entry in source if not entry.obsolete}
    assert len(entries) > 100  # the pages, the admin, the API and the library's messages
    return entries


def _catalog(language):
    return polib.pofile(os.path.join(LOCALE_DIR, language, 'LC_MESSAGES', 'django.po'))


def test_the_shipped_languages():
    assert sorted(os.listdir(LOCALE_DIR)) == LANGUAGES


@pytest.mark.parametrize('language', LANGUAGES)
def test_catalog_is_complete(extracted, language):
    catalog = _catalog(language)
    keys = {_key(entry) for entry in catalog if not entry.obsolete}
    missing = sorted(str(key[1]) for key in set(extracted) - keys)
    stale = sorted(str(key[1]) for key in keys - set(extracted))
    assert not missing, f'{language}: marked strings missing from the catalog: {missing}'
    assert not stale, f'{language}: strings no longer marked in the code: {stale}'
    # A string's python-format flag comes from the source: a translation is checked the same way.
    for entry in catalog:
        assert ('python-format' in entry.flags) == ('python-format' in extracted[_key(entry)].flags), entry.msgid


@pytest.mark.parametrize('language', LANGUAGES)
def test_catalog_has_no_fuzzy_empty_or_obsolete_entry(language):
    catalog = _catalog(language)
    assert catalog.metadata['Language'] == language
    assert catalog.metadata['Plural-Forms'] == PLURAL_FORMS[language]
    assert 'fuzzy' not in catalog.metadata_is_fuzzy
    nplurals = int(PLURAL_FORMS[language].split(';')[0].split('=')[1])
    for entry in catalog:
        assert not entry.obsolete, (language, entry.msgid)
        assert not entry.fuzzy, (language, entry.msgid)
        if entry.msgid_plural:
            forms = entry.msgstr_plural
            assert sorted(forms) == list(range(nplurals)), (language, entry.msgid, forms)
            assert all(text.strip() for text in forms.values()), (language, entry.msgid)
        else:
            assert entry.msgstr.strip(), (language, entry.msgid)


@pytest.mark.parametrize('language', LANGUAGES)
def test_placeholders_survive_translation(language):
    """Every translation renders with the parameters its message gets (a bad one would raise in a page)."""
    for entry in _catalog(language):
        if 'python-format' not in entry.flags:
            continue
        params = _params(entry.msgid)
        for text in (entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]):
            rendered = text % params if params else text % ()
            assert '%(' not in rendered, (language, entry.msgid, text)


def _params(msgid):
    """Sample parameters for the named placeholders of ``msgid`` (numbers fit %d and %s)."""
    return {name: 7 for name in re.findall(r'%\((\w+)\)', msgid)}


@pytest.mark.parametrize('language', LANGUAGES)
def test_compiled_catalog_is_the_source(language):
    """Each committed .mo holds exactly the translations of its .po (recompile: make compile_translations)."""
    base = os.path.join(LOCALE_DIR, language, 'LC_MESSAGES')
    compiled = {_key(entry): entry for entry in polib.mofile(os.path.join(base, 'django.mo'))}
    source = {_key(entry): entry for entry in _catalog(language) if not entry.obsolete}
    assert set(compiled) - {(None, '', '')} == set(source)
    for key, entry in source.items():
        if entry.msgid_plural:
            assert compiled[key].msgstr_plural == entry.msgstr_plural, (language, key)
        else:
            assert compiled[key].msgstr == entry.msgstr, (language, key)


@pytest.mark.parametrize('language', sorted(EXPECTED))
def test_state_text_is_translated(language):
    with translation.override(language):
        assert [str(UserTaskStatus(state=state).state_text) for state in STATES] == EXPECTED[language]
    # The stored state never changes with the language.
    assert [UserTaskStatus(state=state).state for state in STATES] == STATES


def test_english_and_unknown_custom_states_are_untouched():
    with translation.override('en'):
        assert [str(UserTaskStatus(state=state).state_text) for state in STATES] == STATES
    with translation.override('fr'):
        assert UserTaskStatus(state='Exporting course').state_text == 'Exporting course'


@pytest.mark.parametrize(('language', 'one', 'two', 'eleven'), [
    ('fr', '%(done)d sur %(total)d étape', '%(done)d sur %(total)d étapes', '%(done)d sur %(total)d étapes'),
    ('ar', '%(done)d من %(total)d خطوة', '%(done)d من %(total)d خطوتين', '%(done)d من %(total)d خطوة'),
    ('zh-cn', '已完成 %(done)d/%(total)d 步', '已完成 %(done)d/%(total)d 步', '已完成 %(done)d/%(total)d 步'),
])
def test_plural_forms_follow_the_language(language, one, two, eleven):
    from django.utils.translation import ngettext
    with translation.override(language):
        for count, expected in ((1, one), (2, two), (11, eleven)):
            assert ngettext('%(done)d of %(total)d step', '%(done)d of %(total)d steps', count) == expected
    with translation.override('ar'):
        seconds = [ngettext('About %(count)d second left', 'About %(count)d seconds left', n) % {'count': n}
                   for n in (1, 2, 5, 30, 100)]
    assert seconds == ['تبقّت ثانية واحدة تقريبًا', 'تبقّت ثانيتان تقريبًا', 'تبقّى نحو 5 ثوانٍ',
                       'تبقّى نحو 30 ثانية', 'تبقّى نحو 100 ثانية']


def test_the_page_script_holds_no_text():
    """pages.js shows only texts the server sends translated: none of its string literals is words for people."""
    with open(os.path.join(ROOT, 'user_tasks', 'static', 'user_tasks', 'pages.js'), encoding='utf-8') as handle:
        code = handle.read()
    code = re.sub(r'//[^\n]*', '', re.sub(r'/\*.*?\*/', '', code, flags=re.S))
    literals = set(re.findall(r"'((?:[^'\\]|\\.)*)'", code)) | set(re.findall(r'"((?:[^"\\]|\\.)*)"', code))
    assert 'ut-state' in literals  # the extraction found the script's literals
    phrases = sorted(text for text in literals if re.search(r'[A-Za-z]{2,} [A-Za-z]{2,}', text))
    assert phrases == ['use strict']
    messages = {entry.msgid.lower() for entry in _catalog('fr')}
    assert not {text.lower() for text in literals} & messages

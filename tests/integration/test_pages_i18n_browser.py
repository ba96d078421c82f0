"""
The status pages and the API in the reader's language, in a real browser (headless Chromium, Playwright).

The browser asks for its language as a user's would (its locale sets ``Accept-Language``;
the host's LocaleMiddleware answers it).  In French the task page, live while a real
worker runs a task through translatable stages, and the list page hold no English UI
word: every word of the visible text and of the accessible names (aria-label, title)
is checked against the English words of the package's messages, user content (task
names, file names) aside; the same check on the English pages finds them, so it can
fail.  In Arabic the pages lay out right to left: the document's direction, the facts,
the table columns and the progress bar (its filled part, read from the screenshot's
pixels) are mirrored.  The API's ``state_text`` follows ``Accept-Language``.

Screenshots: ``user-tasks-task-fr.png``, ``user-tasks-list-fr.png``,
``user-tasks-task-ar.png`` and ``user-tasks-list-ar.png``, in the test's folder and in
``$USER_TASKS_SCREENSHOTS`` when set (``USER_TASKS_SCREENSHOTS=docs/_static``).
"""
import io
import os
import re
from uuid import uuid4

import polib
import pytest
from django.core.files.base import ContentFile

from tests.integration.test_pages_browser import (  # noqa: F401
    WAIT_MS,
    browser,
    open_as,
    owner,
    screenshot,
    site,
    wait_for_row,
)
from tests.tasks import failing_task, staged_task
from user_tasks import stages
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LOCALE_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'user_tasks', 'locale')

# Every text node that is not hidden (noscript is raw markup to a browser that runs scripts),
# the accessible names and tooltips, and the document's title.
VISIBLE_TEXT = """() => {
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && !parent.closest('[hidden], noscript, script, style')) { texts.push(walker.currentNode.textContent); }
  }
  for (const element of document.querySelectorAll('[aria-label], [title], [alt], [placeholder]')) {
    for (const name of ['aria-label', 'title', 'alt', 'placeholder']) {
      if (element.hasAttribute(name) && !element.closest('[hidden]')) { texts.push(element.getAttribute(name)); }
    }
  }
  return texts.join('\\n');
}"""


@pytest.fixture(scope='module')
def english_words():
    """Words of the package's English messages that no French translation uses too (e.g. 'page', 'worker')."""
    catalog = polib.pofile(os.path.join(LOCALE_DIR, 'fr', 'LC_MESSAGES', 'django.po'))
    english, french = set(), set()
    for entry in catalog:
        english |= _words(' '.join(filter(None, [entry.msgid, entry.msgid_plural])))
        french |= _words(' '.join([entry.msgstr, *entry.msgstr_plural.values()]))
    words = english - french
    assert {'progress', 'results', 'attempts', 'cancel', 'state', 'tasks', 'complete', 'steps'} <= words
    return words


def _words(text):
    # Placeholders (%(name)s) are code, not words.
    return {word.lower() for word in re.findall(r'[A-Za-z]{2,}', re.sub(r'%\(\w+\)\w', ' ', text))}


def english_on(page, english_words, user_content):
    """The English UI words on ``page``, once the user's own content is taken out."""
    text = page.evaluate(VISIBLE_TEXT)
    for content in sorted(user_content, key=len, reverse=True):
        text = text.replace(content, ' ')
    return sorted(_words(text) & english_words)


def test_task_and_list_pages_in_french_have_no_english_ui_word(browser, site, owner, english_words, tmp_path):  # noqa: F811
    failed = failing_task.delay(owner.id, message='Disque plein')
    failed_status = wait_for_row(failed.id, lambda row: row.state == UserTaskStatus.FAILED)
    result = staged_task.delay(owner.id, steps=6, delay=0.6)
    status = wait_for_row(result.id)
    name = 'Exportation du cours course-v1:DemoX+Physique+2026'
    status.set_name(name)
    failed_status.set_name('Importation du cours course-v1:DemoX+Chimie+2025')
    user_content = {name, failed_status.name, owner.username, 'Disque plein'}
    page = open_as(browser, site, owner, locale='fr-FR')
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    assert page.evaluate('[document.documentElement.lang, document.documentElement.dir]') == ['fr', 'ltr']
    # Live, without a reload: the stage arrives from the worker, in French, with its numbers.
    page.wait_for_function("document.querySelector('#ut-stage').textContent.startsWith('Traitement de l’élément')")
    page.wait_for_function("document.querySelector('#ut-progress').value >= 30")
    page.wait_for_selector('#ut-eta:not([hidden])')
    assert page.inner_text('#ut-state') == 'En cours'
    assert re.fullmatch(r'\d sur 6 étapes', page.inner_text('#ut-steps'))
    assert re.fullmatch(r'Environ \d+ secondes? restantes?', page.inner_text('#ut-eta-text'))
    assert english_on(page, english_words, user_content) == []
    screenshot(page, tmp_path, 'user-tasks-task-fr.png')
    page.get_by_role('button', name='Annuler cette tâche').wait_for()  # the accessible name is French too
    page.wait_for_function("document.querySelector('#ut-state').textContent === 'Réussie'", timeout=WAIT_MS)
    assert page.inner_text('#ut-percent') == '100\u00a0% terminé'
    assert page.inner_text('#ut-steps') == '6 sur 6 étapes'
    assert english_on(page, english_words, user_content) == []
    # Its output, under the default artifact name, translated like the rest.
    artifact = UserTaskArtifact(status=status, name='Output')
    artifact.file.save('rapport.csv', ContentFile(b'nom,note\nada,10\n'))
    page.reload()  # the page stopped polling once the task ended
    user_content.add(os.path.basename(artifact.file.name))
    assert page.inner_text('#ut-artifacts') == f'Télécharger {os.path.basename(artifact.file.name)} (Résultat)'
    assert english_on(page, english_words, user_content) == []
    # The API answers the same browser in its language.
    api = page.evaluate(f"fetch('/api/tasks/v0/tasks/{status.uuid}/?include=state_message')"
                        '.then(response => response.json())')
    assert (api['state'], api['state_text']) == ('Succeeded', 'Réussie')
    # A failed task: its error (user content here) under a French label.
    page.goto(f'{site}/user_tasks/{failed_status.uuid}/')
    assert page.get_by_role('alert').inner_text().startswith('Erreur\u00a0:')
    assert english_on(page, english_words, user_content) == []
    # The list.
    page.goto(f'{site}/user_tasks/')
    assert page.inner_text('h1') == 'Mes tâches'
    assert english_on(page, english_words, user_content) == []
    screenshot(page, tmp_path, 'user-tasks-list-fr.png')
    page.context.close()
    # The check has teeth: the same pages in English are full of English UI words.
    page = open_as(browser, site, owner, locale='en-US')
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    assert {'state', 'progress', 'results', 'attempts', 'complete', 'steps'} <= set(
        english_on(page, english_words, user_content))
    page.goto(f'{site}/user_tasks/')
    assert {'my', 'tasks', 'state', 'progress', 'submitted'} <= set(english_on(page, english_words, user_content))
    page.context.close()


def _filled_side(png):
    """Where the filled part of a progress bar's screenshot lies: the mean x of its accent pixels, 0..1."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert('RGB')
    width, height = image.size
    row = height // 2
    # The fill is the accent colour (blue), the track a grey: a clearly bluer pixel is filled.
    filled = [x for x in range(width) if (lambda r, g, b: b - r > 60)(*image.getpixel((x, row)))]
    assert 0.15 * width < len(filled) < 0.6 * width, (len(filled), width)
    return sum(filled) / len(filled) / width


def test_arabic_pages_lay_out_right_to_left(browser, site, owner, tmp_path):  # noqa: F811
    status = UserTaskStatus.objects.create(user=owner, task_id=str(uuid4()), task_class='tests.tasks.staged_task',
                                           name='تصدير المقرر course-v1:DemoX+Physics+2026', total_steps=12,
                                           state=UserTaskStatus.IN_PROGRESS, completed_steps=4)
    status.set_state(stages.ITEMS, done=4, total=12)
    done = UserTaskStatus.objects.create(user=owner, task_id=str(uuid4()), task_class='tests.tasks.sample_task',
                                         name='استيراد المقرر course-v1:DemoX+Intro+2026', total_steps=3,
                                         completed_steps=3, state=UserTaskStatus.SUCCEEDED)
    artifact = UserTaskArtifact(status=done, name='Output')
    artifact.file.save('course.tar.gz', ContentFile(b'\x1f\x8b archive'))
    page = open_as(browser, site, owner, locale='ar')
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    assert page.evaluate('[document.documentElement.lang, document.documentElement.dir]') == ['ar', 'rtl']
    assert page.inner_text('#ut-state') == 'قيد التنفيذ'
    assert page.inner_text('#ut-stage') == 'جارٍ معالجة العنصر 4 من 12'
    assert page.inner_text('#ut-steps') == '4 من 12 خطوة'
    assert page.inner_text('#ut-percent') == 'اكتمل 33٪'
    # Mirrored: the facts run from the right, the heading hugs the right edge, the bar fills from the right.
    boxes = page.evaluate("""() => {
      const box = (element) => element.getBoundingClientRect().toJSON();
      return {main: box(document.querySelector('main')), h1: box(document.querySelector('h1')),
              facts: [...document.querySelectorAll('.ut-facts > div')].map(box)};
    }""")
    assert boxes['facts'][0]['x'] > boxes['facts'][1]['x'] > boxes['facts'][-1]['x']
    assert boxes['main']['right'] - boxes['h1']['right'] < 20
    assert page.eval_on_selector('#ut-progress', 'element => getComputedStyle(element).direction') == 'rtl'
    assert _filled_side(page.locator('#ut-progress').screenshot()) > 0.75
    screenshot(page, tmp_path, 'user-tasks-task-ar.png')
    api = page.evaluate(f"fetch('/api/tasks/v0/tasks/{status.uuid}/?include=state_message')"
                        '.then(response => response.json())')
    assert (api['state'], api['state_text']) == ('Processing item 4 of 12', 'جارٍ معالجة العنصر 4 من 12')
    assert (api['state_msgid'], api['state_params']) == (stages.ITEMS, {'done': 4, 'total': 12})
    # The list: the name column is the rightmost, each row reads right to left.
    page.goto(f'{site}/user_tasks/')
    assert page.inner_text('h1') == 'مهامي'
    headers = page.eval_on_selector_all('thead th', 'cells => cells.map(cell => cell.getBoundingClientRect().x)')
    assert headers == sorted(headers, reverse=True)
    screenshot(page, tmp_path, 'user-tasks-list-ar.png')
    page.context.close()
    # The same bar in French fills from the left: the pixel check tells the two apart.
    page = open_as(browser, site, owner, locale='fr')
    page.goto(f'{site}/user_tasks/{status.uuid}/')
    assert _filled_side(page.locator('#ut-progress').screenshot()) < 0.25
    page.context.close()

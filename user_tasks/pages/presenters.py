"""
Presenters of the status pages: what a row, a task page or an artifact shows, as plain data.

The views (``user_tasks.pages.views``) load the rows and check permissions; these
functions shape the rows into the dicts the templates and the poll's JSON read, so the
HTML page and its live updates cannot disagree.  Progress comes from
``UserTaskStatus.percent``, the same value the admin shows.

Layer: adapters.  Imports ``retrying`` (Celery layer), the domain and the leaves.
"""
import json
import math
import posixpath
from urllib.parse import urlsplit

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from user_tasks import localized, retrying
from user_tasks.models import UserTaskStatus

CANCEL_STATUS = 'user_tasks.cancel_usertaskstatus'
RETRY_STATUS = 'user_tasks.retry_usertaskstatus'
VIEW_STATUS = 'user_tasks.view_usertaskstatus'
#: Characters of an error text shown on the page (the rest is cut, and said to be).
ERROR_TEXT_LIMIT = 10000
#: The default artifact name, shown translated like the library's other stored texts.
DEFAULT_ARTIFACT_NAME = gettext_noop('Output')
#: States shown as such; any other text is a custom stage of a task in progress.
STANDARD_STATES = (UserTaskStatus.PENDING, UserTaskStatus.IN_PROGRESS, UserTaskStatus.SUCCEEDED,
                   UserTaskStatus.FAILED, UserTaskStatus.CANCELED, UserTaskStatus.RETRYING)


def display_state(status):
    """(translated state, custom stage text or '') of a row."""
    if status.state in STANDARD_STATES:
        return str(status.state_text), ''
    # A custom stage, in the reader's language when a catalog knows its message.
    return str(UserTaskStatus.STATE_TRANSLATIONS[UserTaskStatus.IN_PROGRESS]), str(status.state_text)


def eta_seconds(status, now):
    """Seconds left at the rate the task has gone since it started, or None when unknown."""
    if status.state in UserTaskStatus.FINAL_STATES + UserTaskStatus.WAITING_STATES or status.started is None:
        return None
    done, total = status.completed_steps, status.total_steps
    elapsed = (now - status.started).total_seconds()
    if done <= 0 or total <= done or elapsed <= 0:
        return None
    return math.ceil(elapsed / done * (total - done))


def eta_text(seconds):
    """``seconds`` left as a translated sentence, or ''."""
    if seconds is None:
        return ''
    if seconds < 60:
        return ngettext('About %(count)d second left', 'About %(count)d seconds left', seconds) % {'count': seconds}
    if seconds < 3600:
        minutes = round(seconds / 60)
        return ngettext('About %(count)d minute left', 'About %(count)d minutes left', minutes) % {'count': minutes}
    hours = round(seconds / 3600)
    return ngettext('About %(count)d hour left', 'About %(count)d hours left', hours) % {'count': hours}


def summary(status, now, with_user=False):
    """What a list row or a child row shows."""
    state_text, stage = display_state(status)
    return {
        'uuid': str(status.uuid),
        'name': status.name,
        'state': status.state,
        'state_text': state_text,
        'stage': stage,
        'state_class': slugify(status.state) if not stage else 'in-progress',
        'final': status.state in UserTaskStatus.FINAL_STATES,
        'completed_steps': status.completed_steps,
        'total_steps': status.total_steps,
        'percent': status.percent,
        'created': status.created,
        'age_seconds': max(0, int((now - status.created).total_seconds())),
        'task_class': status.task_class,
        'username': status.user.get_username() if with_user else None,
        'url': reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid}),
    }


def snapshot(request, status, fragments=False):
    """
    Everything the task page shows, as plain data (the template's and the poll's).

    Arguments:
        request (HttpRequest): whose user decides ``cancelable``, and renders the fragments.
        status (UserTaskStatus): the row.
        fragments (bool): also render the artifacts, children and "Try again" as HTML (the poll's JSON).

    Returns:
        dict: JSON-ready values (``percent``, ``eta_text``, ``artifacts``, ``children``...).
    """
    now = timezone.now()
    eta = eta_seconds(status, now)
    snapshot = summary(status, now)
    final = snapshot['final']
    snapshot.update({
        'attempts': status.attempts,
        'is_container': status.is_container,
        'started': status.started.isoformat() if status.started else None,
        'finished': status.finished.isoformat() if status.finished else None,
        'eta_seconds': eta,
        'eta_text': eta_text(eta),
        'percent_text': _('%(percent)d%% complete') % {'percent': snapshot['percent']},
        'steps_text': ngettext('%(done)d of %(total)d step', '%(done)d of %(total)d steps', status.total_steps)
        % {'done': status.completed_steps, 'total': status.total_steps},
        'cancelable': not final and request.user.has_perm(CANCEL_STATUS, status),
        'retryable': final and retrying.can_retry(status) and request.user.has_perm(RETRY_STATUS, status),
        'retried_as_url': retried_as_url(request, status),
        'artifacts': [artifact_item(artifact) for artifact in status.artifacts.order_by('created', 'id')],
        'children': [summary(child, now) for child in children(status)],
    })
    snapshot['created'] = status.created.isoformat()
    if fragments:
        snapshot['fragments'] = {
            'artifacts': render_to_string('user_tasks/_artifacts.html', {'task': snapshot}, request),
            'children': render_to_string('user_tasks/_children.html', {'task': snapshot}, request),
            'retry': render_to_string('user_tasks/_retry.html', {'task': snapshot}, request),
        }
    return snapshot


def retried_as_url(request, status):
    """The page of the task that tried this one again, when there is one the user may see ('' otherwise)."""
    new = retrying.retried_as(status)
    if new is None or not request.user.has_perm(VIEW_STATUS, new):
        return ''
    return reverse('user_tasks:task-detail', kwargs={'uuid': new.uuid})


def children(status):
    """The rows under a container, oldest first."""
    if not status.is_container:
        return []
    return UserTaskStatus.objects.filter(parent=status).order_by('created', 'id')


def artifact_item(artifact):
    """How the page shows one artifact: a download, a link, a text, or an error."""
    # The name is the task's label for it; the default one ('Output') reads in the user's language.
    item = {'uuid': str(artifact.uuid), 'name': localized.message_text(artifact.name),
            'is_error': artifact.name == 'Error', 'kind': 'text', 'href': '', 'filename': '', 'text': artifact.text}
    if artifact.file:
        item.update(kind='file', filename=posixpath.basename(artifact.file.name),
                    href=reverse('user_tasks:artifact-download', kwargs={'uuid': artifact.uuid}))
    elif artifact.url and urlsplit(artifact.url).scheme in ('http', 'https'):
        item.update(kind='url', href=artifact.url)
    if item['is_error']:
        item['text'] = error_text(artifact.text)
    return item


def error_text(text):
    """
    An error message, at most ``ERROR_TEXT_LIMIT`` characters.

    Studio stores ``{"raw_error_msg": ...}`` as JSON, shown as its message.  Any text the
    parser cannot take (invalid, or nested deeper than the recursion limit) is shown as is.
    """
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            if isinstance(value.get('raw_error_msg'), str):
                shown = value['raw_error_msg']
            else:
                shown = '; '.join(f'{key}: {val}' for key, val in value.items())
        else:
            shown = localized.message_text(value) if isinstance(value, str) else text
    except Exception:  # noqa: BLE001  ValueError, RecursionError, MemoryError...
        # Plain text: the library's own messages (lost worker, time limit, expiry...) read in the user's language.
        shown = localized.message_text(text)
    if len(shown) > ERROR_TEXT_LIMIT:
        cut = len(shown) - ERROR_TEXT_LIMIT
        shown = shown[:ERROR_TEXT_LIMIT] + ' ' + ngettext(
            '[cut: %(count)d more character]', '[cut: %(count)d more characters]', cut) % {'count': cut}
    return shown

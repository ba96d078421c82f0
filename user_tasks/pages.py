"""
The human status pages: "my tasks", one page per task, its live-update feed, cancel and downloads.

Every view needs a login (the host's ``LOGIN_URL``) and asks the same object permissions as
the REST API, through ``user.has_perm(perm, obj)``: a task or artifact the user may not
view is a 404, exactly like one that does not exist, so nothing leaks.  With the rules of
``user_tasks.rules.add_rules()`` that means its owner or a superuser.

The task page works as a plain page; a small script then polls ``<uuid>/poll/`` for a JSON
snapshot.  The poll answers ``304 Not Modified`` to an unchanged ``If-None-Match`` after a
single query (the row, plus the newest child change and artifact id as subqueries), and the
script stops once the task is final.  Artifact files are streamed from their storage by
``artifact_download``, so they never need a public URL.
"""
import hashlib
import json
import math
import posixpath
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404, HttpResponseBadRequest, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from user_tasks import localized
from user_tasks.conf import settings
from user_tasks.page_headers import no_framing
from user_tasks.models import UserTaskArtifact, UserTaskStatus

VIEW_STATUS = 'user_tasks.view_usertaskstatus'
CANCEL_STATUS = 'user_tasks.cancel_usertaskstatus'
VIEW_ARTIFACT = 'user_tasks.view_usertaskartifact'

#: Rows per page of the task lists.
PAGE_SIZE = 25
#: How often the task page polls, in milliseconds (it backs off while nothing changes).
POLL_INTERVAL_MS = 1000
#: How many recent rows offer their task classes to the staff filter (no scan of a big table).
TASK_CLASS_SAMPLE = 500
#: The default artifact name, shown translated like the library's other stored texts.
DEFAULT_ARTIFACT_NAME = gettext_noop('Output')
#: Characters of an error text shown on the page (the rest is cut, and said to be).
ERROR_TEXT_LIMIT = 10000
#: States shown as such; any other text is a custom stage of a task in progress.
STANDARD_STATES = (UserTaskStatus.PENDING, UserTaskStatus.IN_PROGRESS, UserTaskStatus.SUCCEEDED,
                   UserTaskStatus.FAILED, UserTaskStatus.CANCELED, UserTaskStatus.RETRYING)


# -- lists ------------------------------------------------------------------------------

@no_framing
@require_safe
@login_required
def task_list(request):
    """The user's own tasks, newest first; ``?scope=all`` gives staff every task they may see, with filters."""
    if any('\x00' in value for values in request.GET.lists() for value in [values[0], *values[1]]):
        # PostgreSQL cannot compare a text with a NUL byte: refuse it before any query.
        return HttpResponseBadRequest(_('A filter contains a NUL character.'), content_type='text/plain; charset=utf-8')
    staff = request.user.is_staff
    scope = 'all' if staff and request.GET.get('scope') == 'all' else 'mine'
    filters = {key: request.GET.get(key, '').strip() for key in ('state', 'task_class', 'user')}
    queryset = UserTaskStatus.objects.filter(parent__isnull=True)
    if scope == 'all':
        # The REST API's filter backends decide what "all" is (every task, for a superuser).
        for backend in settings.USER_TASKS_STATUS_FILTERS:
            queryset = backend().filter_queryset(request, queryset, task_list)
        visible = queryset
        queryset = _apply_filters(queryset.select_related('user'), filters)
    else:
        queryset = queryset.filter(user=request.user)
    page = _page_number(request)
    # One row more than a page tells whether there is a next page, without a COUNT(*).
    rows = list(queryset.order_by('-created', '-id')[(page - 1) * PAGE_SIZE:page * PAGE_SIZE + 1])
    now = timezone.now()
    context = {
        'scope': scope,
        'staff': staff,
        'filters': filters,
        'state_choices': [(state, UserTaskStatus.STATE_TRANSLATIONS[state]) for state in STANDARD_STATES],
        'task_classes': _recent_task_classes(visible) if scope == 'all' else [],
        'tasks': [_summary(status, now, with_user=scope == 'all') for status in rows[:PAGE_SIZE]],
        'page': page,
        'previous_query': _query(request, page - 1) if page > 1 else None,
        'next_query': _query(request, page + 1) if len(rows) > PAGE_SIZE else None,
    }
    return render(request, 'user_tasks/task_list.html', context)


def _apply_filters(queryset, filters):
    """Narrow the staff list by state (In Progress includes custom stages), task class and username."""
    state = filters['state']
    if state == UserTaskStatus.IN_PROGRESS:
        queryset = queryset.exclude(state__in=[s for s in STANDARD_STATES if s != UserTaskStatus.IN_PROGRESS])
    elif state:
        queryset = queryset.filter(state=state)
    if filters['task_class']:
        queryset = queryset.filter(task_class=filters['task_class'])
    if filters['user']:
        queryset = queryset.filter(user__username=filters['user'])
    return queryset


def _recent_task_classes(visible):
    """The task classes of the most recent rows the viewer may see, sorted, as suggestions for the filter."""
    recent = visible.order_by('-id').values_list('task_class', flat=True)[:TASK_CLASS_SAMPLE]
    return sorted(set(recent))


def _page_number(request):
    try:
        return max(1, min(int(request.GET.get('page', 1)), 10 ** 6))
    except ValueError:
        return 1


def _query(request, page):
    """The current query string with another page number."""
    query = request.GET.copy()
    query['page'] = page
    return query.urlencode()


# -- one task ---------------------------------------------------------------------------

@no_framing
@require_safe
@login_required
def task_detail(request, uuid):
    """The page of one task: state, progress, stage, attempts, children, artifacts, cancel."""
    status = _visible_status(request, uuid)
    snapshot = _snapshot(request, status)
    context = {
        'task': snapshot,
        'status': status,
        'etag': _etag_of(status),
        'poll_url': reverse('user_tasks:task-poll', kwargs={'uuid': status.uuid}),
        'poll_interval': POLL_INTERVAL_MS,
        'parent': status.parent if status.parent_id and request.user.has_perm(VIEW_STATUS, status.parent) else None,
    }
    return render(request, 'user_tasks/task_detail.html', context)


@never_cache
@no_framing
@require_safe
@login_required
def task_poll(request, uuid):
    """The task page's JSON snapshot; 304 when ``If-None-Match`` still matches (one query)."""
    status = _etag_row(uuid)
    if status is None or not request.user.has_perm(VIEW_STATUS, status):
        raise Http404(_('No such task'))
    etag = _etag(status)
    if etag in _if_none_match(request):
        response = HttpResponseNotModified()
        response['ETag'] = etag
        return response
    response = JsonResponse(_snapshot(request, status, fragments=True))
    response['ETag'] = etag
    return response


@no_framing
@require_POST
@login_required
def task_cancel(request, uuid):
    """Cancel the task (POST, with the CSRF token); a task that already ended is left as it is."""
    status = _visible_status(request, uuid)
    if not request.user.has_perm(CANCEL_STATUS, status):
        raise PermissionDenied
    status.cancel()
    status = _visible_status(request, uuid)
    if 'application/json' in request.headers.get('Accept', ''):
        response = JsonResponse(_snapshot(request, status, fragments=True))
        response['ETag'] = _etag_of(status)
        return response
    target = request.POST.get('next', '')
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})
    return redirect(target)


@no_framing
@require_safe
@login_required
def artifact_download(request, uuid):
    """Stream an artifact's file from its storage as an attachment; 404 unless the user may view it."""
    artifact = UserTaskArtifact.objects.select_related('status').filter(uuid=uuid).first()
    if artifact is None or not request.user.has_perm(VIEW_ARTIFACT, artifact) or not artifact.file:
        raise Http404(_('No such file'))
    try:
        handle = artifact.file.open('rb')
    except (FileNotFoundError, OSError) as exc:
        raise Http404(_('The file is gone')) from exc
    # FileResponse picks the content type from the name (mimetypes) and sets the
    # attachment's Content-Disposition, RFC 6266-encoded for non-ASCII names.
    response = FileResponse(handle, as_attachment=True, filename=posixpath.basename(artifact.file.name))
    response['X-Content-Type-Options'] = 'nosniff'
    response['Cache-Control'] = 'private, no-store'
    return response


# -- helpers ----------------------------------------------------------------------------

def _visible_status(request, uuid):
    """The status with ``uuid`` if the user may view it; 404 otherwise, whether or not it exists."""
    status = UserTaskStatus.objects.select_related('parent').filter(uuid=uuid).first()
    if status is None or not request.user.has_perm(VIEW_STATUS, status):
        raise Http404(_('No such task'))
    return status


def _etag_row(uuid):
    """The row with what its ETag reads, in one query."""
    last_child = UserTaskStatus.objects.filter(parent=OuterRef('pk')).order_by('-modified').values('modified')[:1]
    last_artifact = UserTaskArtifact.objects.filter(status=OuterRef('pk')).order_by('-id').values('id')[:1]
    return (UserTaskStatus.objects.filter(uuid=uuid)
            .annotate(last_child=Subquery(last_child), last_artifact=Subquery(last_artifact)).first())


def _etag_of(status):
    """The current ETag of ``status`` (a row loaded without the annotations)."""
    return _etag(_etag_row(status.uuid))


def _etag(status):
    """A strong validator of everything the snapshot shows."""
    parts = [status.pk, status.state, status.completed_steps, status.total_steps, status.attempts,
             status.name, status.modified.isoformat(), status.last_child, status.last_artifact]
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _if_none_match(request):
    header = request.headers.get('If-None-Match', '')
    return {tag.strip().removeprefix('W/') for tag in header.split(',') if tag.strip()}


def _display_state(status):
    """(translated state, custom stage text or '') of a row."""
    if status.state in STANDARD_STATES:
        return str(status.state_text), ''
    # A custom stage, in the reader's language when a catalog knows its message.
    return str(UserTaskStatus.STATE_TRANSLATIONS[UserTaskStatus.IN_PROGRESS]), str(status.state_text)


def _percent(status):
    if status.total_steps > 0:
        return max(0, min(100, math.floor(100 * status.completed_steps / status.total_steps)))
    return 100 if status.state == UserTaskStatus.SUCCEEDED else 0


def _eta_seconds(status, now):
    """Seconds left at the rate the task has gone since it started, or None when unknown."""
    if status.state in UserTaskStatus.FINAL_STATES + UserTaskStatus.WAITING_STATES or status.started is None:
        return None
    done, total = status.completed_steps, status.total_steps
    elapsed = (now - status.started).total_seconds()
    if done <= 0 or total <= done or elapsed <= 0:
        return None
    return math.ceil(elapsed / done * (total - done))


def _eta_text(seconds):
    if seconds is None:
        return ''
    if seconds < 60:
        return ngettext('About %(count)d second left', 'About %(count)d seconds left', seconds) % {'count': seconds}
    if seconds < 3600:
        minutes = round(seconds / 60)
        return ngettext('About %(count)d minute left', 'About %(count)d minutes left', minutes) % {'count': minutes}
    hours = round(seconds / 3600)
    return ngettext('About %(count)d hour left', 'About %(count)d hours left', hours) % {'count': hours}


def _summary(status, now, with_user=False):
    """What a list row or a child row shows."""
    state_text, stage = _display_state(status)
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
        'percent': _percent(status),
        'created': status.created,
        'age_seconds': max(0, int((now - status.created).total_seconds())),
        'task_class': status.task_class,
        'username': status.user.get_username() if with_user else None,
        'url': reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid}),
    }


def _snapshot(request, status, fragments=False):
    """Everything the task page shows, as plain data (the template's and the poll's)."""
    now = timezone.now()
    eta = _eta_seconds(status, now)
    snapshot = _summary(status, now)
    final = snapshot['final']
    snapshot.update({
        'attempts': status.attempts,
        'is_container': status.is_container,
        'started': status.started.isoformat() if status.started else None,
        'finished': status.finished.isoformat() if status.finished else None,
        'eta_seconds': eta,
        'eta_text': _eta_text(eta),
        'percent_text': _('%(percent)d%% complete') % {'percent': snapshot['percent']},
        'steps_text': ngettext('%(done)d of %(total)d step', '%(done)d of %(total)d steps', status.total_steps)
        % {'done': status.completed_steps, 'total': status.total_steps},
        'cancelable': not final and request.user.has_perm(CANCEL_STATUS, status),
        'artifacts': [_artifact(artifact) for artifact in status.artifacts.order_by('created', 'id')],
        'children': [_summary(child, now) for child in _children(status)],
    })
    snapshot['created'] = status.created.isoformat()
    if fragments:
        snapshot['fragments'] = {
            'artifacts': render_to_string('user_tasks/_artifacts.html', {'task': snapshot}, request),
            'children': render_to_string('user_tasks/_children.html', {'task': snapshot}, request),
        }
    return snapshot


def _children(status):
    if not status.is_container:
        return []
    return UserTaskStatus.objects.filter(parent=status).order_by('created', 'id')


def _artifact(artifact):
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
        item['text'] = _error_text(artifact.text)
    return item


def _error_text(text):
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
    except Exception:  # pylint: disable=broad-except  # ValueError, RecursionError, MemoryError...
        # Plain text: the library's own messages (lost worker, time limit, expiry...) read in the user's language.
        shown = localized.message_text(text)
    if len(shown) > ERROR_TEXT_LIMIT:
        cut = len(shown) - ERROR_TEXT_LIMIT
        shown = shown[:ERROR_TEXT_LIMIT] + ' ' + ngettext(
            '[cut: %(count)d more character]', '[cut: %(count)d more characters]', cut) % {'count': cut}
    return shown


"""
The human status pages: "my tasks", one page per task, its live-update feed, cancel, try again and downloads.

Every view needs a login (the host's ``LOGIN_URL``) and asks the same object permissions as
the REST API, through ``user.has_perm(perm, obj)``: a task or artifact the user may not
view is a 404, exactly like one that does not exist, so nothing leaks.  With the rules of
``user_tasks.rules.add_rules()`` that means its owner or a superuser.

The task page works as a plain page; a small script then polls ``<uuid>/poll/`` for a JSON
snapshot.  The poll answers ``304 Not Modified`` to an unchanged ``If-None-Match`` after a
single query (the row, plus the newest child change and artifact id as subqueries), and the
script stops once the task is final.  Artifact files are streamed from their storage by
``artifact_download``, so they never need a public URL.

The views load rows and check permissions; ``user_tasks.pages.presenters`` shapes what
they show.  Layer: adapters.  Imports the presenters, ``retrying`` (Celery layer), the domain
and the leaves.
"""
import hashlib
import json
import posixpath

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404, HttpResponseBadRequest, HttpResponseNotModified, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from user_tasks import retrying
from user_tasks.conf import settings
from user_tasks.exceptions import ArgumentsNotStorable, RetryNotSent, RetryRefused, TooManyActiveTasks
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.page_headers import no_framing
from user_tasks.pages import presenters

VIEW_STATUS = 'user_tasks.view_usertaskstatus'
CANCEL_STATUS = presenters.CANCEL_STATUS
RETRY_STATUS = presenters.RETRY_STATUS
VIEW_ARTIFACT = 'user_tasks.view_usertaskartifact'

#: Rows per page of the task lists.
PAGE_SIZE = 25
#: How often the task page polls, in milliseconds (it backs off while nothing changes).
POLL_INTERVAL_MS = 1000
#: How many recent rows offer their task classes to the staff filter (no scan of a big table).
TASK_CLASS_SAMPLE = 500
#: Characters of an error text shown on the page (the rest is cut, and said to be).
ERROR_TEXT_LIMIT = presenters.ERROR_TEXT_LIMIT
#: States shown as such; any other text is a custom stage of a task in progress.
STANDARD_STATES = presenters.STANDARD_STATES


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
    rows = list(queryset.newest_first()[(page - 1) * PAGE_SIZE:page * PAGE_SIZE + 1])
    now = timezone.now()
    context = {
        'scope': scope,
        'staff': staff,
        'filters': filters,
        'state_choices': [(state, UserTaskStatus.STATE_TRANSLATIONS[state]) for state in STANDARD_STATES],
        'task_classes': _recent_task_classes(visible) if scope == 'all' else [],
        'tasks': [presenters.summary(status, now, with_user=scope == 'all') for status in rows[:PAGE_SIZE]],
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
    return sorted(visible.recent_task_classes(TASK_CLASS_SAMPLE))


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
    """The page of one task: state, progress, stage, attempts, children, artifacts, cancel, try again."""
    return _detail_page(request, _visible_status(request, uuid))


def _detail_page(request, status, error=None, code=200):
    """Render the task page, with ``error`` (a refused "Try again") shown above the task."""
    snapshot = presenters.snapshot(request, status)
    context = {
        'error': error,
        'task': snapshot,
        'status': status,
        'etag': _etag_of(status),
        'poll_url': reverse('user_tasks:task-poll', kwargs={'uuid': status.uuid}),
        'poll_interval': POLL_INTERVAL_MS,
        'parent': status.parent if status.parent_id and request.user.has_perm(VIEW_STATUS, status.parent) else None,
    }
    return render(request, 'user_tasks/task_detail.html', context, status=code)


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
    response = JsonResponse(presenters.snapshot(request, status, fragments=True))
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
        response = JsonResponse(presenters.snapshot(request, status, fragments=True))
        response['ETag'] = _etag_of(status)
        return response
    target = request.POST.get('next', '')
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse('user_tasks:task-detail', kwargs={'uuid': status.uuid})
    return redirect(target)


@no_framing
@require_POST
@login_required
def task_retry(request, uuid):
    """
    Try a failed or canceled task again (POST, with the CSRF token) and go to the new task's page.

    A refusal shows the task page again with the reason: 429 Too Many Requests when the
    user has too many active tasks of the kind (``TooManyActiveTasks``), 503 Service Unavailable
    when the message could not be sent (``RetryNotSent``), 409 Conflict otherwise.
    """
    status = _visible_status(request, uuid)
    if not request.user.has_perm(RETRY_STATUS, status):
        raise PermissionDenied
    try:
        new, _created = retrying.retry(status)
    except TooManyActiveTasks as exc:
        return _detail_page(request, status, error=str(exc), code=429)
    except (RetryRefused, ArgumentsNotStorable) as exc:
        return _detail_page(request, status, error=str(exc), code=409)
    except RetryNotSent as exc:  # the broker is down: the task can be tried again later
        return _detail_page(request, status, error=str(exc), code=503)
    return redirect('user_tasks:task-detail', uuid=new.uuid)


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


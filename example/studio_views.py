"""
The export page's endpoints, as Studio's ``contentstore/views/import_export.py`` serves them.

The course export page (frontend-app-authoring) POSTs ``/export/<course>``, then polls
``/export_status/<course>`` every 3 s and reads:

- ``ExportStatus``: 0 preparing (no task yet), 1 exporting, 2 compressing, 3 done; a failed
  or canceled export gives ``-(completed_steps + 1)``, at least -2;
- ``ExportOutput``: the download URL, once done;
- ``ExportError``: an object such as ``{"raw_error_msg": ...}`` (the ``Error`` artifact's
  text parsed as JSON; the raw text when it is not JSON).

``POST /export/<course>`` answers 429 Too Many Requests when the user already has three
active exports (``CourseExportTask.max_active_per_user``).

The latest ``Export of <course>`` status is found by name, through the
``USER_TASKS_STATUS_FILTERS`` backends, as Studio does.
"""
import json

from django.contrib.auth.decorators import login_required
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, Http404, HttpResponseNotAllowed, JsonResponse
from django.urls import reverse
from django.utils.translation import get_language
from django.views.decorators.http import require_GET

from example.studio_export import export_name, export_olx
from user_tasks.conf import settings as user_tasks_settings
from user_tasks.exceptions import TooManyActiveTasks
from user_tasks.models import UserTaskArtifact, UserTaskStatus

PREPARING, EXPORTING, COMPRESSING, SUCCESS = 0, 1, 2, 3


@login_required
def export_handler(request, course_key_string):
    """POST starts an export of the course for the requesting user."""
    if request.method != 'POST':
        return HttpResponseNotAllowed(['POST'])
    try:
        # A second POST while this course's export is active returns that export (nothing new starts).
        export_olx.delay(request.user.id, course_key_string, get_language())
    except TooManyActiveTasks as exc:
        return JsonResponse({'ExportError': str(exc)}, status=429)
    return JsonResponse({'ExportStatus': EXPORTING})


@require_GET
@login_required
def export_status_handler(request, course_key_string):
    """The export page's progress JSON for the latest export of the course."""
    task_status = latest_task_status(request, course_key_string, export_status_handler)
    response = {'ExportStatus': PREPARING}
    if task_status is None:
        return JsonResponse(response)
    if task_status.state == UserTaskStatus.SUCCEEDED:
        response['ExportStatus'] = SUCCESS
        artifact = task_status.artifacts.filter(name='Output').order_by('-created').first()
        if artifact is not None and artifact.file:
            response['ExportOutput'] = _output_url(artifact, course_key_string)
    elif task_status.state in (UserTaskStatus.FAILED, UserTaskStatus.CANCELED):
        response['ExportStatus'] = max(-(task_status.completed_steps + 1), -COMPRESSING)
        error = task_status.artifacts.filter(name='Error').order_by('-created').first()
        if error is not None:
            try:
                response['ExportError'] = json.loads(error.text)
            except ValueError:
                response['ExportError'] = error.text
    else:
        response['ExportStatus'] = min(task_status.completed_steps + 1, COMPRESSING)
    return JsonResponse(response)


@require_GET
@login_required
def export_output_handler(request, course_key_string):
    """Serve the tarball of the latest successful export (file-system storage)."""
    task_status = latest_task_status(request, course_key_string, export_output_handler)
    if task_status is None or task_status.state != UserTaskStatus.SUCCEEDED:
        raise Http404('No finished export')
    artifact = UserTaskArtifact.objects.filter(status=task_status, name='Output').order_by('-created').first()
    if artifact is None or not artifact.file:
        raise Http404('No export output')
    return FileResponse(artifact.file.open('rb'), as_attachment=True,
                        filename=artifact.file.name.rsplit('/', 1)[-1], content_type='application/x-tgz')


def latest_task_status(request, course_key_string, view_func):
    """The newest export status of the course that the requesting user may see."""
    queryset = UserTaskStatus.objects.filter(name=export_name(course_key_string))
    for filter_class in user_tasks_settings.USER_TASKS_STATUS_FILTERS:
        queryset = filter_class().filter_queryset(request, queryset, view_func)
    return queryset.order_by('-created', '-id').first()


def _output_url(artifact, course_key_string):
    """Files on local disk go through the permission-checked view; other storages give their own URL."""
    if isinstance(artifact.file.storage, FileSystemStorage):
        return reverse('export_output_handler', args=[course_key_string])
    return artifact.file.storage.url(artifact.file.name)

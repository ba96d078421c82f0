"""
REST views of user task statuses and artifacts.

Who sees what is decided twice, on purpose: the filter backends
(``USER_TASKS_STATUS_FILTERS`` / ``USER_TASKS_ARTIFACT_FILTERS``) narrow the lists, and
``DjangoObjectPermissionsIncludingView`` asks ``user.has_perm(perm, obj)`` for every single
object, so an object the user may not view is a 404 and one they may view but not act on
is a 403.

Layer: adapters.  Imports the serializers, ``retrying`` (Celery layer), the domain and the leaves.
"""
import logging

from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.db.models import Prefetch
from django.dispatch import receiver
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext as _
from rest_framework import mixins, permissions, viewsets
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from user_tasks import deletion, retrying
from user_tasks._schema import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from user_tasks.conf import DEFAULTS, settings
from user_tasks.exceptions import ArgumentsNotStorable, RetryNotSent, RetryRefused, TooManyActiveTasks
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.serializers import ArtifactSerializer, StatusMessageSerializer, StatusSerializer

LOG = logging.getLogger(__name__)


class DjangoObjectPermissionsIncludingView(permissions.DjangoObjectPermissions):
    """
    Object permissions that also guard reading, plus per-action permissions.

    Any authenticated user may reach the views (the filter backends limit the lists);
    each object then needs ``<app>.view_<model>`` to be seen at all, and the permission of
    the method (``delete_``, ...) or of the view's action (``action_perms_map``, e.g.
    ``cancel_``) to be acted on.
    """

    perms_map = {
        **permissions.DjangoObjectPermissions.perms_map,
        'GET': ['%(app_label)s.view_%(model_name)s'],
        'OPTIONS': ['%(app_label)s.view_%(model_name)s'],
        'HEAD': ['%(app_label)s.view_%(model_name)s'],
    }

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated)

    def _required(self, request, view, model_cls):
        """The permissions the request needs on one object."""
        template = getattr(view, 'action_perms_map', {}).get(getattr(view, 'action', None))
        if template is None:
            return self.get_required_object_permissions(request.method, model_cls)
        meta = model_cls._meta
        return [perm % {'app_label': meta.app_label, 'model_name': meta.model_name} for perm in template]

    def has_object_permission(self, request, view, obj):
        model_cls = self._queryset(view).model
        user = request.user
        if user.has_perms(self._required(request, view, model_cls), obj):
            return True
        if not user.has_perms(self.get_required_object_permissions('GET', model_cls), obj):
            raise Http404
        return False


class _ProjectSettingsMixin:
    """Authenticate and paginate as the project's DRF settings say; absurd offsets are 404s."""

    # Plain class attributes, as DRF documents them: hosts read them from the class
    # (edx-drf-extensions' EnsureJWTAuthSettingsMiddleware iterates
    # ``view.cls.authentication_classes``; schema generators read the other two).
    # ``_follow_settings`` rebinds them when a host or a test changes the settings.
    authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # PostgreSQL cannot compare a text with a NUL byte; a host's filter backend would
        # turn one into a 500.  No valid parameter holds one: refuse it first.
        for key, values in request.query_params.lists():
            if any('\x00' in value for value in [key, *values]):
                raise ParseError(_('The query parameter %(name)s contains a NUL character.') % {'name': repr(key)})

    def paginate_queryset(self, queryset):
        try:
            return super().paginate_queryset(queryset)
        except ValidationError as exc:
            # A host's CursorPagination given a cursor whose position is not a date (forged):
            # answered as DRF answers a cursor it cannot decode.
            raise NotFound(getattr(self.paginator, 'invalid_cursor_message', _('Invalid page.'))) from exc
        except (OverflowError, ValueError, DatabaseError) as exc:
            # An offset beyond what the database can represent (e.g. ?offset=10**30).
            raise NotFound(_('Invalid page.')) from exc


def _filter_backends(name):
    """
    The filter backends the setting ``name`` gives; its default ones while it names nothing importable.

    Read where the class is defined, so a wrong value (a missing comma makes a tuple a
    string) would otherwise stop the URLconf from loading and ``manage.py check`` before its
    check (``user_tasks.E002`` / ``E003``) could name the setting.  The defaults show each
    user only their own rows.
    """
    try:
        return getattr(settings, name)
    except (ImportError, TypeError, ValueError) as exc:
        LOG.error('%s is wrong (%s): the default filters apply until it is fixed (see manage.py check)', name, exc)
        return DEFAULTS[name]()


#: ``?include=state_message`` adds ``state_msgid`` and ``state_params`` to each status.
STATE_MESSAGE = 'state_message'


def _includes(request, name):
    """Whether the request's ``include`` parameters (repeated or comma-separated) name ``name``."""
    values = getattr(request, 'query_params', request.GET).getlist('include')
    return any(name == part.strip() for value in values for part in value.split(','))


_INCLUDE = OpenApiParameter(
    'include', str, required=False,
    description='Comma-separated extras; other names are ignored. state_message: add state_msgid '
                '(the English gettext message id that state_text is rendered from) and state_params '
                '(its parameters) to each task, for clients that translate themselves.')
_BAD_REQUEST = OpenApiResponse(description='A query parameter holds a NUL character')
_NOT_FOUND = OpenApiResponse(description='No such object, or not visible to the user')
_FORBIDDEN = OpenApiResponse(description='Not authenticated, or not allowed to do this')
_MESSAGE = {'type': 'object', 'properties': {'detail': {'type': 'string'}, 'reason': {'type': 'string'}}}


@extend_schema_view(
    list=extend_schema(summary='List the visible tasks, newest first', parameters=[_INCLUDE],
                       responses={200: StatusSerializer(many=True), 400: _BAD_REQUEST, 403: _FORBIDDEN}),
    retrieve=extend_schema(summary='Show one task', parameters=[_INCLUDE],
                           responses={200: StatusSerializer, 400: _BAD_REQUEST, 403: _FORBIDDEN, 404: _NOT_FOUND}),
    destroy=extend_schema(
        summary='Delete a task (a running one is canceled first) with its artifacts and children',
        responses={204: OpenApiResponse(description='Deleted'), 400: _BAD_REQUEST, 403: _FORBIDDEN, 404: _NOT_FOUND},
    ),
)
class StatusViewSet(_ProjectSettingsMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """List, show, cancel and delete user task statuses."""

    queryset = UserTaskStatus.objects.all()
    serializer_class = StatusSerializer
    permission_classes = (DjangoObjectPermissionsIncludingView,)
    lookup_field = 'uuid'
    action_perms_map = {'cancel': ['%(app_label)s.cancel_%(model_name)s'],
                        'retry': ['%(app_label)s.retry_%(model_name)s']}

    filter_backends = _filter_backends('USER_TASKS_STATUS_FILTERS')

    def get_serializer_class(self):
        # 4.0's fields unless the client asks for the message behind state_text.
        if self.request is not None and _includes(self.request, STATE_MESSAGE):
            return StatusMessageSerializer
        return super().get_serializer_class()

    def get_queryset(self):
        # Only what the hyperlinks need, for every listed status in one query.
        artifacts = Prefetch('artifacts', queryset=UserTaskArtifact.objects.only('uuid', 'status_id').order_by('id'))
        return super().get_queryset().prefetch_related(artifacts).newest_first()

    def perform_destroy(self, instance):
        # A running task (or a container's running children) must stop before its row goes.
        deletion.cancel_and_delete(instance)

    @extend_schema(
        summary='Cancel a task; a task that already ended is returned unchanged',
        operation_id='tasks_cancel',
        parameters=[_INCLUDE],
        request=None,
        responses={200: StatusSerializer, 400: _BAD_REQUEST, 403: _FORBIDDEN, 404: _NOT_FOUND},
    )
    @action(detail=True, methods=['post'])
    def cancel(self, request, *args, **kwargs):
        """Cancel the task (or every task of a container) and return its status."""
        status = self.get_object()
        status.cancel()
        status = self.get_queryset().get(pk=status.pk)
        return Response(self.get_serializer(status).data)

    @extend_schema(
        summary='Try a failed or canceled task again, with the same arguments and user',
        description=(
            'Publishes a new task with the arguments kept for a task whose class is retryable, '
            'subject to its concurrency key and per-user limit. 201 with the new status (its URL '
            'in Location); 200 with the identical task that was already active. The old task '
            'stays and links to the new one; it can be tried again once.'),
        operation_id='tasks_retry',
        parameters=[_INCLUDE],
        request=None,
        responses={
            201: StatusSerializer,
            200: OpenApiResponse(StatusSerializer, description='An identical task was already active: that one'),
            400: _BAD_REQUEST, 403: _FORBIDDEN, 404: _NOT_FOUND,
            409: OpenApiResponse(_MESSAGE, description=(
                'The task cannot be tried again; reason: not_retryable (its class does not allow it, or its '
                'arguments were not kept), not_ended, succeeded or already_retried')),
            429: OpenApiResponse(_MESSAGE, description='The user has too many active tasks of this kind'),
            503: OpenApiResponse(_MESSAGE, description=(
                'reason: not_sent: the new task could not be sent (the task queue is unreachable); nothing '
                'was kept and the task can be tried again later')),
        },
    )
    @action(detail=True, methods=['post'])
    def retry(self, request, *args, **kwargs):
        """Publish the task again; see ``user_tasks.retrying``."""
        status = self.get_object()
        try:
            new, created = retrying.retry(status)
        except RetryRefused as exc:
            # The request is well formed: the task's state (or class) is what refuses it.
            return Response({'detail': str(exc), 'reason': exc.reason}, status=http.HTTP_409_CONFLICT)
        except ArgumentsNotStorable as exc:  # the bound was lowered since the task was published
            return Response({'detail': str(exc), 'reason': 'not_retryable'}, status=http.HTTP_409_CONFLICT)
        except TooManyActiveTasks as exc:
            return Response({'detail': str(exc), 'reason': 'too_many_active'}, status=http.HTTP_429_TOO_MANY_REQUESTS)
        except RetryNotSent as exc:  # the broker is down: the old task stays retryable
            return Response({'detail': str(exc), 'reason': 'not_sent'}, status=http.HTTP_503_SERVICE_UNAVAILABLE)
        new = self.get_queryset().get(pk=new.pk)
        headers = {'Location': request.build_absolute_uri(reverse('usertaskstatus-detail', kwargs={'uuid': new.uuid}))}
        code = http.HTTP_201_CREATED if created else http.HTTP_200_OK
        return Response(self.get_serializer(new).data, status=code, headers=headers)


@extend_schema_view(
    list=extend_schema(summary='List the visible artifacts, newest first',
                       responses={200: ArtifactSerializer(many=True), 400: _BAD_REQUEST, 403: _FORBIDDEN}),
    retrieve=extend_schema(summary='Show one artifact',
                           responses={200: ArtifactSerializer, 400: _BAD_REQUEST, 403: _FORBIDDEN, 404: _NOT_FOUND}),
)
class ArtifactViewSet(_ProjectSettingsMixin, viewsets.ReadOnlyModelViewSet):
    """List and show the artifacts of user tasks."""

    queryset = UserTaskArtifact.objects.all()
    serializer_class = ArtifactSerializer
    permission_classes = (DjangoObjectPermissionsIncludingView,)
    lookup_field = 'uuid'

    filter_backends = _filter_backends('USER_TASKS_ARTIFACT_FILTERS')

    def get_queryset(self):
        return super().get_queryset().select_related('status').order_by('-created', '-id')


_FOLLOWED_SETTINGS = {'REST_FRAMEWORK', 'USER_TASKS_STATUS_FILTERS', 'USER_TASKS_ARTIFACT_FILTERS'}


@receiver(setting_changed)
def _follow_settings(setting=None, **kwargs):
    """
    Rebind the viewsets' class attributes when their settings change (``override_settings``).

    DRF reloads ``api_settings`` on the same signal, and its receiver was connected first
    (``rest_framework.settings`` is imported above), so the values read here are current.
    """
    if setting not in _FOLLOWED_SETTINGS:
        return
    for viewset in (StatusViewSet, ArtifactViewSet):
        viewset.authentication_classes = api_settings.DEFAULT_AUTHENTICATION_CLASSES
        viewset.pagination_class = api_settings.DEFAULT_PAGINATION_CLASS
    StatusViewSet.filter_backends = _filter_backends('USER_TASKS_STATUS_FILTERS')
    ArtifactViewSet.filter_backends = _filter_backends('USER_TASKS_ARTIFACT_FILTERS')

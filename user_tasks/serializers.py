"""
REST serializers of the two models, with the fields django-user-tasks 4.0 exposed.

``StatusSerializer`` has exactly 4.0's fields (Studio's pages and hosts' tests compare
them).  Clients that translate themselves ask for ``?include=state_message`` and get
``StatusMessageSerializer``: the same, plus ``state_msgid`` and ``state_params``, the
English message id and parameters that ``state_text`` is rendered from in the request's
language (see ``user_tasks.localized``).

Related objects are rendered as hyperlinks keyed by uuid.  The views prefetch what these
serializers read (artifact uuids, the status of an artifact), so a list costs the same
number of queries whatever its length.

Layer: adapters (the lowest).  Imports the domain and the leaves.
"""
from django.urls import NoReverseMatch, reverse
from rest_framework import serializers

from user_tasks._schema import OpenApiTypes, extend_schema_field
from user_tasks.conf import settings
from user_tasks.models import UserTaskArtifact, UserTaskStatus

#: URL name of the permission-checked artifact download view, when the pages are installed.
DOWNLOAD_VIEW_NAME = 'user_tasks:artifact-download'


def _download_url(artifact, request):
    """The download view's URL for ``artifact``, or None when no such view is routed."""
    try:
        url = reverse(DOWNLOAD_VIEW_NAME, kwargs={'uuid': artifact.uuid})
    except NoReverseMatch:
        return None
    return request.build_absolute_uri(url) if request is not None else url


@extend_schema_field(OpenApiTypes.STR if OpenApiTypes else None)
class ArtifactFileField(serializers.Field):
    """The artifact file's URL, or '' when the artifact has no file."""

    def __init__(self, **kwargs):
        kwargs.setdefault('read_only', True)
        kwargs['source'] = '*'
        super().__init__(**kwargs)

    def to_representation(self, value):
        if not value.file:
            return ''
        if settings.USER_TASKS_ARTIFACT_DOWNLOADS:
            url = _download_url(value, self.context.get('request'))
            if url is not None:
                return url
        return value.file.url


class StatusSerializer(serializers.HyperlinkedModelSerializer):
    """A user task's status, with links to its artifacts: 4.0's fields, exactly."""

    state_text = serializers.CharField(read_only=True, help_text='The state in the language of the request.')
    artifacts = serializers.HyperlinkedRelatedField(
        many=True, read_only=True, view_name='usertaskartifact-detail', lookup_field='uuid',
    )

    class Meta:
        model = UserTaskStatus
        fields = (
            'name', 'state', 'state_text', 'completed_steps', 'total_steps', 'attempts',
            'created', 'modified', 'artifacts',
        )
        read_only_fields = fields


class StatusMessageSerializer(StatusSerializer):
    """A status plus the message ``state_text`` is rendered from, asked with ``?include=state_message``."""

    state_msgid = serializers.SerializerMethodField(
        help_text='The English gettext message id that state_text is rendered from (the state itself, '
                  'or the message of a custom stage).')
    state_params = serializers.SerializerMethodField(
        help_text='The parameters substituted into the translated message id (an empty object when none).')

    class Meta(StatusSerializer.Meta):
        fields = (*StatusSerializer.Meta.fields, 'state_msgid', 'state_params')
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR if OpenApiTypes else None)
    def get_state_msgid(self, obj):
        return obj.state_message[0]

    @extend_schema_field(OpenApiTypes.OBJECT if OpenApiTypes else None)
    def get_state_params(self, obj):
        return obj.state_message[1]


class ArtifactSerializer(serializers.HyperlinkedModelSerializer):
    """An output of a user task: a file, a URL or a text, with a link to its status."""

    status = serializers.HyperlinkedRelatedField(
        read_only=True, view_name='usertaskstatus-detail', lookup_field='uuid',
    )
    file = ArtifactFileField()

    class Meta:
        model = UserTaskArtifact
        fields = ('name', 'created', 'modified', 'status', 'file', 'text', 'url')
        read_only_fields = fields

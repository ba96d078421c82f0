"""
Django admin for user task statuses and artifacts, built for tables of millions of rows.

Layer: adapters.  Imports the domain and the leaves.

A changelist never runs a full ``COUNT(*)``: the paginator counts at most
``CappedCountPaginator.cap`` rows (on PostgreSQL an unfiltered list uses the planner's
row estimate instead), the "N total" link is off, related users and statuses come in
the same query, and the filters' choices need no scan of the table.
"""
from uuid import UUID

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Exists, OuterRef, Q
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from user_tasks import deletion
from user_tasks.models import UserTaskArtifact, UserTaskStatus

#: How many recent rows the task class filter reads to offer its choices.
TASK_CLASS_SAMPLE = 5000


class CappedCountPaginator(Paginator):
    """A paginator whose count stops at ``cap`` rows, or is the planner's estimate for a whole big table."""

    cap = 10000

    def _estimate(self, queryset):
        """PostgreSQL's row estimate for an unfiltered table, or None."""
        connection = connections[queryset.db]
        if connection.vendor != 'postgresql' or queryset.query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute('SELECT reltuples FROM pg_class WHERE oid = %s::regclass',
                           [queryset.model._meta.db_table])
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] and row[0] > self.cap else None

    @cached_property
    def count(self):
        queryset = self.object_list
        if not hasattr(queryset, 'query'):
            return len(queryset)
        estimate = self._estimate(queryset)
        if estimate is not None:
            return estimate
        return queryset.order_by().values('pk')[:self.cap].count()


class StateFilter(admin.SimpleListFilter):
    """Filter by one of the six standard states (choices need no query)."""

    title = _('state')
    parameter_name = 'state'

    def lookups(self, request, model_admin):
        return [(state, label) for state, label in UserTaskStatus.STATE_TRANSLATIONS.items()]

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


class TaskClassFilter(admin.SimpleListFilter):
    """Filter by task class, offering the classes seen among the most recent rows."""

    title = _('task class')
    parameter_name = 'task_class'

    def lookups(self, request, model_admin):
        classes = UserTaskStatus.objects.recent_task_classes(TASK_CLASS_SAMPLE)
        if self.value():
            classes.add(self.value())
        return [(name, name) for name in sorted(classes)]

    def queryset(self, request, queryset):
        return queryset.filter(task_class=self.value()) if self.value() else queryset


def _unfinished_below():
    """A condition true for rows with a child or grandchild that has not finished."""
    child = UserTaskStatus.objects.filter(parent_id=OuterRef('pk'))
    grandchild = UserTaskStatus.objects.filter(parent__parent_id=OuterRef('pk'))
    return Exists(child.unfinished()) | Exists(grandchild.unfinished())


class _RefuseNulMixin:
    """
    Treat a NUL byte in the changelist's query string as an invalid filter.

    PostgreSQL cannot compare a text with one, so a filter or search holding it would be a
    500; the admin's own handling of invalid lookups (a redirect to ``?e=1``) applies instead.
    """

    def get_changelist_instance(self, request):
        if any('\x00' in value for key, values in request.GET.lists() for value in [key, *values]):
            raise IncorrectLookupParameters('A filter contains a NUL character.')
        return super().get_changelist_instance(request)


@admin.register(UserTaskStatus)
class UserTaskStatusAdmin(_RefuseNulMixin, admin.ModelAdmin):
    """Operators' view of user tasks: newest first, filterable, cancelable."""

    list_display = ('name', 'user', 'state_label', 'progress', 'task_class', 'is_container', 'created', 'modified')
    list_filter = (StateFilter, TaskClassFilter)
    list_select_related = ('user',)
    search_fields = ('=uuid', '=task_id', 'task_class', 'name', 'user__username', 'user__email')
    ordering = ('-created', '-id')
    readonly_fields = ('uuid', 'parent', 'started', 'heartbeat', 'finished', 'created', 'modified')
    raw_id_fields = ('user',)
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100
    actions = ('cancel_selected', 'delete_finished')

    def get_search_results(self, request, queryset, search_term):
        # A uuid (a status uuid, or a Celery task id) is answered from the unique indexes;
        # free text scans the name, class and user columns.
        term = search_term.strip()
        try:
            uid = UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(uuid=uid) | Q(task_id__in={term, str(uid)})), False

    @admin.display(description=_('state'), ordering='state')
    def state_label(self, obj):
        """The state, or the stage, in the operator's language."""
        return obj.state_text

    def delete_model(self, request, obj):
        # The delete page: a task that has not ended is canceled first (user_tasks.deletion).
        deletion.cancel_and_delete(obj)

    def delete_queryset(self, request, queryset):
        # The "delete selected" action: the same, per row (each cascade removes its files after commit).
        for status in queryset.select_related('parent'):
            if UserTaskStatus.objects.filter(pk=status.pk).exists():  # not already gone with its parent
                deletion.cancel_and_delete(status)

    @admin.display(description=_('progress'))
    def progress(self, obj):
        """Completed out of total steps, with the percentage (``UserTaskStatus.percent``, as the pages)."""
        return f'{obj.completed_steps}/{obj.total_steps} ({obj.percent}%)'

    @admin.action(description=_('Cancel selected tasks'), permissions=['change'])
    def cancel_selected(self, request, queryset):
        """Cancel each selected task; those already ended stay as they are."""
        canceled = sum(1 for status in queryset.select_related('parent') if status.cancel())
        message = ngettext('Canceled %(count)d task.', 'Canceled %(count)d tasks.', canceled) % {'count': canceled}
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_('Delete selected tasks that have finished'), permissions=['delete'])
    def delete_finished(self, request, queryset):
        """Delete the selected tasks that ended (and whose children ended), with their artifacts."""
        finished = queryset.final().exclude(_unfinished_below())
        count = finished.count()
        finished.delete()
        message = (ngettext('Deleted %(count)d finished task.', 'Deleted %(count)d finished tasks.', count)
                   % {'count': count})
        self.message_user(request, message, messages.SUCCESS)


@admin.register(UserTaskArtifact)
class UserTaskArtifactAdmin(_RefuseNulMixin, admin.ModelAdmin):
    """The outputs of user tasks, newest first."""

    list_display = ('name', 'status', 'user', 'created', 'modified')
    list_select_related = ('status', 'status__user')
    search_fields = ('=uuid', '=status__uuid', '=status__task_id', 'name', 'status__user__username')
    ordering = ('-created', '-id')
    readonly_fields = ('uuid', 'created', 'modified')
    raw_id_fields = ('status',)
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100

    @admin.display(description=_('user'))
    def user(self, obj):
        """Who started the task that produced the artifact."""
        return obj.status.user

    def get_search_results(self, request, queryset, search_term):
        # A uuid (of the artifact or of its task) or a Celery task id: unique index look-ups.
        term = search_term.strip()
        try:
            uid = UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(uuid=uid) | Q(status__uuid=uid) | Q(status__task_id__in={term, str(uid)})), False

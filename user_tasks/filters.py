"""
REST filter backends limiting what a user sees: superusers see every task, others their own.

Hosts can replace them through ``USER_TASKS_STATUS_FILTERS`` and
``USER_TASKS_ARTIFACT_FILTERS``; Studio's import/export views apply the status
filters to their own querysets, calling ``filter_queryset(request, queryset, view)``.

Layer: leaf.  Imports only DRF.
"""
from rest_framework.filters import BaseFilterBackend


class StatusFilterBackend(BaseFilterBackend):
    """Limit UserTaskStatus rows to the requesting user's, unless a superuser asks."""

    def filter_queryset(self, request, queryset, view):
        if request.user.is_superuser:
            return queryset
        return queryset.filter(user=request.user)


class ArtifactFilterBackend(BaseFilterBackend):
    """Limit UserTaskArtifact rows to those of the requesting user's tasks, unless a superuser asks."""

    def filter_queryset(self, request, queryset, view):
        if request.user.is_superuser:
            return queryset
        return queryset.filter(status__user=request.user)

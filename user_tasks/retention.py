"""
Purging finished tasks: bounded batches, files deleted, running tasks never touched.

A row is old when its completion (``finished``, or ``modified`` for rows written
before that column existed) is older than its state's max age
(``USER_TASKS_MAX_AGE_BY_STATE``, falling back to ``USER_TASKS_MAX_AGE``).  Only
final rows are purged, leaves first, so a container goes only after all its children
have; each DELETE touches at most ``USER_TASKS_PURGE_BATCH_SIZE`` rows and no row is
loaded as a model instance.  Each run is recorded in ``PeriodicJobRun``.

Layer: operations.  Imports the domain, the hub and the leaves; what a purge deleted is
told through ``lifecycle.announce_purged``.
"""
import logging

from django.db.models import DateTimeField, Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from user_tasks import checks, lifecycle
from user_tasks.conf import get_storage, settings
from user_tasks.models import PeriodicJobRun, UserTaskArtifact, UserTaskStatus

LOG = logging.getLogger(__name__)


def _old_final_rows(now):
    """
    A queryset of final statuses past their max age.

    A row canceled while running is final before its work stops (``finished`` empty,
    ``started`` set): it is still running, so it is left until it stops or is reaped.
    """
    by_state = settings.USER_TASKS_MAX_AGE_BY_STATE or {}
    condition = Q()
    for state in UserTaskStatus.FINAL_STATES:
        max_age = by_state.get(state, settings.USER_TASKS_MAX_AGE)
        condition |= Q(state=state, completion__lt=now - max_age)
    completion = Coalesce('finished', 'modified', output_field=DateTimeField())
    return (UserTaskStatus.objects.annotate(completion=completion).filter(condition)
            .exclude(finished__isnull=True, started__isnull=False))


def _delete_artifacts(status_ids, batch_size, counts):
    storage = get_storage()
    while True:
        rows = list(UserTaskArtifact.objects.filter(status_id__in=status_ids)
                    .order_by('id').values_list('id', 'file')[:batch_size])
        if not rows:
            return
        for _, name in rows:
            if name:
                try:
                    storage.delete(name)
                    counts['file'] += 1
                except Exception:  # noqa: BLE001  a storage error must not stop the purge
                    LOG.exception('Could not delete artifact file %s', name)
        query = UserTaskArtifact.objects.filter(id__in=[pk for pk, _ in rows])
        counts['artifact'] += query._raw_delete(query.db)


def purge(now=None, batch_size=None):
    """
    Delete old finished tasks with their artifacts and files.

    Arguments:
        now (datetime or None): the time to measure ages from (default: now).
        batch_size (int or None): rows per DELETE (default: ``USER_TASKS_PURGE_BATCH_SIZE``).

    Returns:
        dict: what was deleted: ``{'status': n, 'artifact': n, 'file': n}``.
    """
    # A wrong max age could make young rows look old: refuse with the system check's message.
    checks.validate('USER_TASKS_MAX_AGE', 'USER_TASKS_MAX_AGE_BY_STATE', 'USER_TASKS_PURGE_BATCH_SIZE')
    now = now or timezone.now()
    batch_size = batch_size or settings.USER_TASKS_PURGE_BATCH_SIZE
    counts = {'status': 0, 'artifact': 0, 'file': 0}
    has_children = Exists(UserTaskStatus.objects.filter(parent_id=OuterRef('pk')))
    while True:
        ids = list(_old_final_rows(now).filter(~has_children).order_by('id').values_list('id', flat=True)[:batch_size])
        if not ids:
            break
        _delete_artifacts(ids, batch_size, counts)
        query = UserTaskStatus.objects.filter(id__in=ids)
        counts['status'] += query._raw_delete(query.db)
    LOG.info('Purged %(status)d user task statuses, %(artifact)d artifacts and %(file)d files', counts)
    PeriodicJobRun.record(PeriodicJobRun.PURGE, now)  # read by every web process's /metrics
    lifecycle.announce_purged(UserTaskStatus, counts)
    return counts

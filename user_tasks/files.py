"""
Artifact files leave storage with their rows, once the delete commits.

One ``post_delete`` receiver covers every way a row goes through the ORM: the REST
DELETE, the admin's delete page and actions, and the cascade from a deleted status or
user.  The file is deleted only after the transaction commits, so a rolled-back delete
keeps it.  The purge deletes rows without the ORM's signals and removes their files
itself (``user_tasks.retention``).

Layer: operations.  Imports the domain and the leaves; ``UserTasksConfig.ready()`` connects it.
"""
import logging

from django.db.models.signals import post_delete

from user_tasks import commit
from user_tasks.conf import get_storage
from user_tasks.models import UserTaskArtifact

LOG = logging.getLogger(__name__)


def _delete_file(name):
    try:
        get_storage().delete(name)
    except Exception:  # noqa: BLE001  a storage error must not fail the delete
        LOG.exception('Could not delete the artifact file %s', name)


def remove_artifact_file(sender, instance, using=None, **kwargs):  # noqa: ARG001  post_delete's arguments
    """Delete a deleted artifact's file from storage once the delete commits (``post_delete``)."""
    name = instance.file.name if instance.file else None
    if name:
        commit.after_commit(lambda: _delete_file(name), using=using)


def connect():
    """Connect the receiver (idempotent)."""
    post_delete.connect(remove_artifact_file, sender=UserTaskArtifact, dispatch_uid='user_tasks.remove_artifact_file')

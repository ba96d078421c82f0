"""
Object permissions for the REST API, declared with the ``rules`` library.

Nothing is registered on import: a host opts in by calling ``add_rules()`` (the Open edX
plugin does it for edx-platform), and may register its own predicates for the same
permission names instead.  ``rules.permissions.ObjectPermissionBackend`` must be in
``AUTHENTICATION_BACKENDS`` for them to be consulted by ``user.has_perm(perm, obj)``.

Layer: leaf.  Imports only the ``rules`` library.
"""
import rules


@rules.predicate
def is_status_creator(user, status):
    """Whether ``user`` started the task of ``status`` (False for a model-level check)."""
    return status is not None and user is not None and status.user_id == user.pk


@rules.predicate
def is_artifact_creator(user, artifact):
    """Whether ``user`` started the task that produced ``artifact`` (False for a model-level check)."""
    return artifact is not None and user is not None and artifact.status.user_id == user.pk


# Active users only, as Django's ModelBackend (the rules backend does not check is_active).
#: Owner or superuser: view, cancel, retry and delete a status.
STATUS_PERMISSION = rules.is_active & (rules.is_superuser | is_status_creator)
#: Owner or superuser: view an artifact.
ARTIFACT_PERMISSION = rules.is_active & (rules.is_superuser | is_artifact_creator)

#: Permission name -> predicate, as registered by ``add_rules()``.
PERMISSIONS = {
    'user_tasks.view_usertaskstatus': STATUS_PERMISSION,
    'user_tasks.cancel_usertaskstatus': STATUS_PERMISSION,
    'user_tasks.retry_usertaskstatus': STATUS_PERMISSION,
    'user_tasks.delete_usertaskstatus': STATUS_PERMISSION,
    'user_tasks.add_usertaskstatus': rules.is_superuser,
    'user_tasks.change_usertaskstatus': rules.is_superuser,
    'user_tasks.view_usertaskartifact': ARTIFACT_PERMISSION,
    'user_tasks.add_usertaskartifact': rules.is_superuser,
    'user_tasks.change_usertaskartifact': rules.is_superuser,
    'user_tasks.delete_usertaskartifact': rules.is_superuser,
}

#: Permissions django-user-tasks 4.0 did not have: the plugin adds them to a host that
#: defines all the others itself (see ``user_tasks.plugin.apps.register_rules``).
NEW_PERMISSIONS = ('user_tasks.retry_usertaskstatus',)


def add_rules():
    """Register the owner-or-superuser permissions; calling it again is harmless."""
    for name, predicate in PERMISSIONS.items():
        rules.set_perm(name, predicate)

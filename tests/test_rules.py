"""The owner-or-superuser rules registered by ``user_tasks.rules.add_rules()``."""
import pytest
import rules

from tests.rest_helpers import create_artifact, create_status
from user_tasks.rules import (
    ARTIFACT_PERMISSION,
    PERMISSIONS,
    STATUS_PERMISSION,
    add_rules,
    is_artifact_creator,
    is_status_creator,
)

pytest_plugins = ['tests.rest_fixtures']
pytestmark = pytest.mark.django_db

OWNER_OR_SUPERUSER = {
    'user_tasks.view_usertaskstatus', 'user_tasks.cancel_usertaskstatus', 'user_tasks.delete_usertaskstatus',
    'user_tasks.retry_usertaskstatus', 'user_tasks.view_usertaskartifact',
}
SUPERUSER_ONLY = {
    'user_tasks.add_usertaskstatus', 'user_tasks.change_usertaskstatus', 'user_tasks.add_usertaskartifact',
    'user_tasks.change_usertaskartifact', 'user_tasks.delete_usertaskartifact',
}


def test_predicates(owner, stranger):
    status = create_status(owner)
    artifact = create_artifact(status)
    assert is_status_creator(owner, status) and not is_status_creator(stranger, status)
    assert is_artifact_creator(owner, artifact) and not is_artifact_creator(stranger, artifact)
    assert not is_status_creator(owner, None) and not is_artifact_creator(owner, None)
    assert STATUS_PERMISSION.test(owner, status) and not STATUS_PERMISSION.test(stranger, status)
    assert ARTIFACT_PERMISSION.test(owner, artifact) and not ARTIFACT_PERMISSION.test(stranger, artifact)


def test_registered_permission_names():
    assert set(PERMISSIONS) == OWNER_OR_SUPERUSER | SUPERUSER_ONLY
    for name in PERMISSIONS:
        assert rules.perm_exists(name)


def test_add_rules_is_idempotent():
    add_rules()
    add_rules()
    assert all(rules.perm_exists(name) for name in PERMISSIONS)


@pytest.mark.parametrize('perm', sorted(OWNER_OR_SUPERUSER))
def test_owner_or_superuser(owner, stranger, superuser, perm):
    status = create_status(owner)
    obj = create_artifact(status) if perm.endswith('artifact') else status
    assert owner.has_perm(perm, obj)
    assert superuser.has_perm(perm, obj)
    assert not stranger.has_perm(perm, obj)
    assert not owner.has_perm(perm)  # no model-wide permission for non-superusers


@pytest.mark.parametrize('perm', sorted(SUPERUSER_ONLY))
def test_superuser_only(owner, superuser, perm):
    status = create_status(owner)
    obj = create_artifact(status) if perm.endswith('artifact') else status
    assert not owner.has_perm(perm, obj)
    assert superuser.has_perm(perm, obj)


def test_inactive_owner_has_no_permission(owner):
    status = create_status(owner)
    owner.is_active = False
    owner.save()
    assert not owner.has_perm('user_tasks.view_usertaskstatus', status)

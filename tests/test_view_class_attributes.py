"""
DRF view attributes that hosts read from the class are real class attributes.

edx-platform's middleware (edx-drf-extensions' ``EnsureJWTAuthSettingsMiddleware``) iterates
``view.cls.authentication_classes`` for every API request; schema tools read
``pagination_class`` and ``filter_backends`` from the class.  A property there is a
``TypeError: 'property' object is not iterable``: every REST request of Studio answered 500.
"""
import pytest
from django.test import RequestFactory
from django.test.utils import override_settings
from edx_rest_framework_extensions.auth.jwt.authentication import JwtAuthentication
from edx_rest_framework_extensions.auth.jwt.middleware import EnsureJWTAuthSettingsMiddleware
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.settings import api_settings

from user_tasks.filters import ArtifactFilterBackend, StatusFilterBackend
from user_tasks.views import ArtifactViewSet, StatusViewSet

VIEWSETS = [StatusViewSet, ArtifactViewSet]


@pytest.mark.parametrize('viewset', VIEWSETS)
@pytest.mark.parametrize('name', ['authentication_classes', 'pagination_class', 'filter_backends'])
def test_attribute_is_a_plain_class_attribute(viewset, name):
    for klass in viewset.__mro__:
        if name in vars(klass):
            assert not isinstance(vars(klass)[name], property), f'{klass.__name__}.{name} is a property'
            break


@pytest.mark.parametrize('viewset', VIEWSETS)
def test_class_values_are_the_project_defaults(viewset):
    assert tuple(viewset.authentication_classes) == tuple(api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    assert viewset.pagination_class is api_settings.DEFAULT_PAGINATION_CLASS
    assert StatusViewSet.filter_backends == (StatusFilterBackend,)
    assert ArtifactViewSet.filter_backends == (ArtifactFilterBackend,)


def test_class_attributes_follow_setting_changes():
    rest = {'DEFAULT_AUTHENTICATION_CLASSES': ['rest_framework.authentication.BasicAuthentication'],
            'DEFAULT_PAGINATION_CLASS': 'rest_framework.pagination.LimitOffsetPagination'}
    before = {viewset: list(viewset.authentication_classes) for viewset in VIEWSETS}
    with override_settings(REST_FRAMEWORK=rest, USER_TASKS_STATUS_FILTERS=(OrderingFilter,)):
        for viewset in VIEWSETS:
            assert list(viewset.authentication_classes) == [BasicAuthentication]
            assert viewset.pagination_class is LimitOffsetPagination
        assert StatusViewSet.filter_backends == (OrderingFilter,)
        assert ArtifactViewSet.filter_backends == (ArtifactFilterBackend,)
    for viewset in VIEWSETS:
        assert list(viewset.authentication_classes) == before[viewset] != [BasicAuthentication]
        assert viewset.pagination_class is api_settings.DEFAULT_PAGINATION_CLASS
    assert StatusViewSet.filter_backends == (StatusFilterBackend,)


@pytest.mark.parametrize('viewset', VIEWSETS)
def test_edx_platform_middleware_reads_the_view_class(viewset):
    """``EnsureJWTAuthSettingsMiddleware.process_view`` as edx-platform runs it, JWT first."""
    rest = {'DEFAULT_AUTHENTICATION_CLASSES': [
        'edx_rest_framework_extensions.auth.jwt.authentication.JwtAuthentication',
        'rest_framework.authentication.SessionAuthentication']}
    with override_settings(REST_FRAMEWORK=rest):
        original = viewset.permission_classes
        try:
            view = viewset.as_view({'get': 'list'})
            middleware = EnsureJWTAuthSettingsMiddleware(lambda request: None)
            assert middleware.process_view(RequestFactory().get('/'), view, (), {}) is None
            assert list(viewset.authentication_classes) == [JwtAuthentication, SessionAuthentication]
            # The middleware added edx-drf-extensions' JWT permission class to ours.
            assert len(viewset.permission_classes) == len(original) + 1
        finally:
            viewset.permission_classes = original

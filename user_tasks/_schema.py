"""
Optional OpenAPI annotations: drf-spectacular's decorators when it is installed, no-ops otherwise.

drf-spectacular is a test/docs extra, so hosts that never generate a schema do not need it.

Layer: leaf.  Imports only drf-spectacular, when installed.
"""
try:  # pragma: no branch
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
        extend_schema_field,
        extend_schema_view,
    )
except ImportError:  # pragma: no cover
    OpenApiTypes = None

    def _noop_decorator(*args, **kwargs):
        """Return a decorator that leaves its target unchanged."""
        return lambda target: target

    extend_schema = extend_schema_field = extend_schema_view = _noop_decorator

    def OpenApiResponse(*args, **kwargs):  # noqa: N802
        """Stand-in for drf-spectacular's response description."""
        return None

    def OpenApiParameter(*args, **kwargs):  # noqa: N802
        """Stand-in for drf-spectacular's parameter description."""
        return None

__all__ = ['OpenApiParameter', 'OpenApiResponse', 'OpenApiTypes', 'extend_schema', 'extend_schema_field',
           'extend_schema_view']

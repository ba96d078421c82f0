"""
Headers every status page sets by itself: no framing.

The task page holds a one-click Cancel form; a host without Django's clickjacking
middleware (or with a laxer policy) must not let another site frame it.  So each page
answers ``X-Frame-Options: DENY`` and a CSP ``frame-ancestors 'none'`` (modern browsers
prefer the latter), unless the view or a middleware already set a stricter header.

Layer: leaf.  Imports only Django; the pages use it.
"""
from functools import wraps

from django.views.decorators.clickjacking import xframe_options_deny


def no_framing(view):
    """Mark ``view``'s responses as not frameable (``X-Frame-Options`` and CSP ``frame-ancestors``)."""
    denied = xframe_options_deny(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = denied(request, *args, **kwargs)
        policy = response.get('Content-Security-Policy', '')
        if 'frame-ancestors' not in policy:
            response['Content-Security-Policy'] = '; '.join(
                part for part in (policy.strip().rstrip(';'), "frame-ancestors 'none'") if part)
        return response
    return wrapper

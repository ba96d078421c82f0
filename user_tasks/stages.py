"""
Stage texts of Open edX's user tasks, shipped translated with this package.

Studio's course export moves through ``Exporting`` and ``Compressing``, its import through
``Unpacking``, ``Verifying`` and ``Updating``; it calls ``status.set_state('Exporting')``
with the English text, which is also the message id, so the pages and the API show these
stages in the reader's language with no change to Studio.  A task author with stages of
their own marks them with ``gettext_noop`` and translates them in their own catalog
(see ``docs/i18n.rst``); ``ITEMS`` shows a stage with parameters.
"""
from django.utils.translation import gettext_noop

EXPORTING = gettext_noop('Exporting')
COMPRESSING = gettext_noop('Compressing')
UNPACKING = gettext_noop('Unpacking')
VERIFYING = gettext_noop('Verifying')
UPDATING = gettext_noop('Updating')
#: ``set_state(ITEMS, done=3, total=12)``: a stage that carries numbers.
ITEMS = gettext_noop('Processing item %(done)s of %(total)s')

"""
Stored texts that each reader sees in their own language: a task's stage and its Error message.

A task writes its stage once, in a worker, with no reader's language at hand.  So the
text is stored twice: ``state`` holds its English rendering (what django-user-tasks 4.0
and every other reader of the column shows, and what Studio compares), and
``state_msgid`` / ``state_params`` hold the gettext message id and its parameters, from
which a reader renders it with the catalogs of the active language.  A stage without
parameters is its own message id, so rows written by 4.0 (or by a task that never heard
of this) are translated too, whenever a catalog of the host or of this package knows them.

Message ids are looked up in every catalog Django has loaded (the host project's and
its apps'), so a task author marks them with ``gettext_noop`` and translates them in
their own catalog; ``user_tasks.stages`` ships common ones translated.
"""
import json

from django.utils.translation import gettext

#: Length of the ``state`` column; a longer English rendering is cut to it.
STATE_MAX_LENGTH = 128
#: Length of the ``name`` column; a longer name is cut to it.
NAME_MAX_LENGTH = 255
#: Ends a text that was cut to fit its column (one character, so the cut text fits exactly).
ELLIPSIS = '\u2026'


def render(msgid, params=None, translate=True):
    """``msgid`` in the active language (or in English), with ``params`` substituted."""
    # gettext('') is the catalog's header: an empty text stays empty.
    text = gettext(msgid) if translate and msgid else msgid
    if not params:
        return text
    try:
        return text % params
    except (KeyError, TypeError, ValueError):
        # A translation whose placeholders do not match its message id: English beats nothing.
        return msgid % params


def fit(text, max_length):
    """
    ``text`` cut to ``max_length`` characters, its last one an ellipsis when it was cut.

    PostgreSQL and MySQL refuse a longer value (``DataError``) where SQLite stores it:
    names a host builds from user input (a file name, a course title) can be longer.
    Anything but a ``str`` (None, a lazy translation) is returned as it is.

    Example::

        fit('Import of course-v1:edX+Demo+2026 from ' + filename, NAME_MAX_LENGTH)
    """
    if not isinstance(text, str) or len(text) <= max_length:
        return text
    return text[:max_length - 1] + ELLIPSIS


def english(msgid, params=None):
    """The text stored in ``state``: the English rendering, cut to the column's length."""
    return fit(msgid % params if params else msgid, STATE_MAX_LENGTH)


def checked_params(msgid, params):
    """
    ``params`` as stored, after checking that the message can be rendered with them.

    Raises ``TypeError`` (values JSON cannot hold) or ``KeyError``/``ValueError`` (a
    placeholder without its parameter): a task author's mistake, reported where it is made.
    """
    if not params:
        return None
    stored = json.loads(json.dumps(params))
    msgid % stored
    return stored


def stored_message(state, msgid, params):
    """(message id, parameters) of a stored custom state; the state itself when they no longer match it."""
    if msgid and params is not None:
        try:
            if english(msgid, params) == state:
                return msgid, params
        except (KeyError, TypeError, ValueError):
            pass
    return state, {}


def message_text(text):
    """An Error text in the active language when a catalog knows it (the library's own are all translated)."""
    return gettext(text) if text else text

"""
A minimal Django project around upstream django-user-tasks 4.0, for ``bench/throughput.py``.

It runs only inside the throw-away virtualenv that holds upstream's release (built by
``bench/common/upstream.py``), with this directory's parent on ``PYTHONPATH``; nothing in
the project's own environment imports it.  Upstream is used as a black box, through its
public API (a task with ``UserTask`` as its base), exactly as a host would.
"""

"""The path of Debian's ``promtool``, for the tests that check metrics, rules and scrape configs."""
import os
import shutil

import pytest


def promtool():
    """promtool's path; skip without it locally, fail without it under CI=true."""
    path = shutil.which('promtool')
    if path is None:
        if os.environ.get('CI') == 'true':
            pytest.fail('promtool is missing under CI=true (.ci/run installs the prometheus package)')
        pytest.skip('promtool is not installed (Debian package prometheus)')
    return path

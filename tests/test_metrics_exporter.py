"""The worker's metrics exporter: its listen address and the bearer token check (issue 14, item 4)."""
import urllib.error
import urllib.request

import pytest

from user_tasks.metrics import worker


@pytest.fixture
def exporter():
    """Start the exporter on a free loopback port for the test; stop it after."""
    started = []

    def start(value, token):
        address = worker.start_exporter(value, token=token)
        assert address is not None
        started.append(address)
        return f'http://127.0.0.1:{address[1]}/metrics'
    yield start
    worker.stop_exporter()


def get(url, token=None):
    request = urllib.request.Request(url, headers={'Authorization': f'Bearer {token}'} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_token_guards_the_exporter_as_it_guards_the_web_view(exporter):
    url = exporter('127.0.0.1:0', token='s3cret')
    status, headers, _ = get(url)
    assert status == 401 and headers['WWW-Authenticate'].startswith('Bearer')
    assert get(url, token='wrong')[0] == 403
    status, _, body = get(url, token='s3cret')
    assert status == 200 and 'user_tasks_build_info' in body


def test_without_a_token_the_exporter_answers_everyone(exporter):
    status, _, body = get(exporter('127.0.0.1:0', token=''))
    assert status == 200 and 'user_tasks_' in body


def test_a_bare_port_listens_on_the_address_setting(settings):
    assert worker.parse_address(9101) == ('127.0.0.1', 9101)   # loopback unless asked
    settings.USER_TASKS_METRICS_ADDRESS = '0.0.0.0'
    assert worker.parse_address('9101') == ('0.0.0.0', 9101)
    assert worker.parse_address('10.0.0.5:9101') == ('10.0.0.5', 9101)  # an explicit host wins
    assert worker.parse_address('[::1]:9101') == ('::1', 9101)


def test_bearer_check():
    assert worker.bearer_ok('Bearer abc', 'abc') and worker.bearer_ok('bearer  abc ', 'abc')
    assert not worker.bearer_ok('Bearer abd', 'abc')
    assert not worker.bearer_ok('Basic abc', 'abc')
    assert not worker.bearer_ok('Bearer abc', None)
    assert not worker.bearer_ok(None, 'abc')

"""
The OpenAPI schema: generated from the code, committed as docs/openapi.yaml, and fuzzed.

``make openapi`` (``python -m django spectacular --settings tests.settings --file
docs/openapi.yaml``) regenerates the file; ``test_committed_schema_is_up_to_date`` fails
when someone changes the API without doing so.  ``test_fuzz_live_api`` drives the live
API (a real HTTP server on loopback) from that file with schemathesis, as the owner of
the tasks, as another user and anonymously, with valid and invalid inputs, and requires
no 5xx and every response conforming to the schema.
"""
import base64
import os
from unittest import mock

import pytest
from django.core.management import call_command

from tests.rest_helpers import create_artifact, create_status
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytest.importorskip('drf_spectacular')

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), '..', 'docs', 'openapi.yaml')
#: Examples per (operation, identity, generation mode): 5 operations x 3 identities x 2 modes.
#: The run is derandomized; with the default of 20 it makes 720 requests (schemathesis adds
#: its explicit examples to hypothesis' 20), in about 15 s on an idle machine.
MAX_EXAMPLES = int(os.environ.get('USER_TASKS_FUZZ_EXAMPLES', '20'))

pytest_plugins = ['tests.rest_fixtures']


def test_committed_schema_is_up_to_date(tmp_path):
    generated = tmp_path / 'openapi.yaml'
    call_command('spectacular', file=str(generated), validate=True, fail_on_warn=True)
    with open(SCHEMA_PATH, encoding='utf-8') as handle:
        committed = handle.read()
    assert generated.read_text(encoding='utf-8') == committed, (
        'docs/openapi.yaml is stale: run `make openapi` and commit the result')


def test_schema_has_every_route_and_no_extra_fields():
    import yaml
    with open(SCHEMA_PATH, encoding='utf-8') as handle:
        schema = yaml.safe_load(handle)
    routes = {path: sorted(ops) for path, ops in schema['paths'].items()}
    assert routes == {
        '/api/tasks/v0/tasks/': ['get'],
        '/api/tasks/v0/tasks/{uuid}/': ['delete', 'get'],
        '/api/tasks/v0/tasks/{uuid}/cancel/': ['post'],
        '/api/tasks/v0/tasks/{uuid}/retry/': ['post'],
        '/api/tasks/v0/artifacts/': ['get'],
        '/api/tasks/v0/artifacts/{uuid}/': ['get'],
    }
    components = schema['components']['schemas']
    assert sorted(components['Status']['properties']) == sorted([
        'name', 'state', 'state_text', 'completed_steps', 'total_steps', 'attempts', 'created', 'modified',
        'artifacts'])
    assert sorted(components['Artifact']['properties']) == sorted([
        'name', 'created', 'modified', 'status', 'file', 'text', 'url'])


def _basic(username, password):
    token = base64.b64encode(f'{username}:{password}'.encode()).decode()
    return {'Authorization': f'Basic {token}'}


class _Fixtures:
    """Rows the fuzzer may hit by uuid; recreated when a DELETE removed them."""

    def __init__(self, owner, stranger):
        self.owner, self.stranger = owner, stranger
        self.rows = [
            ('owner-pending', owner, UserTaskStatus.PENDING, False),
            ('owner-running', owner, UserTaskStatus.IN_PROGRESS, False),
            ('owner-done', owner, UserTaskStatus.SUCCEEDED, False),
            ('owner-group', owner, UserTaskStatus.IN_PROGRESS, True),
            ('stranger-pending', stranger, UserTaskStatus.PENDING, False),
        ]
        self.status_uuids, self.artifact_uuids = {}, {}
        self.ensure()

    def ensure(self):
        for task_id, user, state, container in self.rows:
            status = UserTaskStatus.objects.filter(task_id=task_id).first()
            if status is None:
                status = create_status(user, task_id=task_id, state=state, is_container=container,
                                       task_class='celery.group' if container else 'tests.tasks.sample_task')
                if container:
                    create_status(user, task_id=f'{task_id}-child', parent=status, state=state)
                create_artifact(status, text=f'output of {task_id}', url='https://example.com/out')
            self.status_uuids[task_id] = str(status.uuid)
            self.artifact_uuids[task_id] = str(UserTaskArtifact.objects.filter(status=status).first().uuid)
        UserTaskStatus.objects.filter(task_id__in=[row[0] for row in self.rows]).exclude(
            is_container=True).filter(parent__isnull=True).update(completed_steps=0)

    def known_uuids(self, path):
        source = self.artifact_uuids if path.startswith('/api/tasks/v0/artifacts/') else self.status_uuids
        return sorted(source.values())


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_fuzz_live_api(live_server, django_user_model, rules_added, settings):
    requests = pytest.importorskip('requests')
    schemathesis = pytest.importorskip('schemathesis')
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st
    from schemathesis.specs.openapi.checks import ignored_auth

    owner = django_user_model.objects.create_user('fuzz-owner', 'fo@example.com', 'owner-pw')
    stranger = django_user_model.objects.create_user('fuzz-stranger', 'fs@example.com', 'stranger-pw')
    fixtures = _Fixtures(owner, stranger)
    identities = {
        'owner': _basic('fuzz-owner', 'owner-pw'),
        'stranger': _basic('fuzz-stranger', 'stranger-pw'),
        'anonymous': {},
    }
    schema = schemathesis.openapi.from_path(SCHEMA_PATH)
    session = requests.Session()
    # Django's test server and a kept-alive connection meet Nagle's algorithm and delayed
    # ACKs (about 45 ms per request); a fresh connection per request takes about 3 ms.
    session.headers['Connection'] = 'close'
    # 127.0.0.1, not localhost: no IPv6 attempt first on every connection.
    base_url = live_server.url.replace('localhost', '127.0.0.1')
    settings.ALLOWED_HOSTS = ['localhost', '127.0.0.1']
    stats = {'cases': 0, 'by_status': {}}
    failures = []

    def run(operation, identity, mode):
        strategy = operation.as_strategy(generation_mode=mode)
        has_uuid = '{uuid}' in operation.path
        known = fixtures.known_uuids(operation.path) if has_uuid else []
        pick = st.sampled_from(known + [None]) if has_uuid and mode.name == 'POSITIVE' else st.none()

        @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy, chosen=pick)
        def example(case, chosen):
            if chosen is not None:
                case.path_parameters = {**(case.path_parameters or {}), 'uuid': chosen}
            response = case.call(base_url=base_url, session=session, headers=identities[identity], timeout=30)
            stats['cases'] += 1
            stats['by_status'][response.status_code] = stats['by_status'].get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append((identity, mode.name, operation.label, case.path_parameters, case.query,
                                 response.status_code, response.text[:300]))
            try:
                # ignored_auth replays the request with made-up credentials but keeps the valid
                # Authorization header we add, so it would flag a correct 200; the anonymous
                # identity is what proves authentication is enforced.
                case.validate_response(response, excluded_checks=[ignored_auth])
            except Exception as exc:
                failures.append((identity, mode.name, operation.label, case.path_parameters, case.query,
                                 response.status_code, str(exc)[:500]))
            fixtures.ensure()

        example()

    with mock.patch('user_tasks.signals.celery_app.control.revoke'):
        for result in schema.get_all_operations():
            operation = result.ok()
            for identity in identities:
                for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                    run(operation, identity, mode)

    print(f'\nschemathesis: {stats["cases"]} cases, responses by status: {dict(sorted(stats["by_status"].items()))}')
    assert not failures, '\n'.join(map(repr, failures[:20]))
    assert stats['cases'] >= 5 * 3 * 2  # every operation, identity and mode ran
    assert stats['by_status'].get(200) and stats['by_status'].get(404) and stats['by_status'].get(403)

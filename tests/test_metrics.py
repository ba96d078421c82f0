"""Prometheus metrics from the lifecycle (single-process mode), the /metrics view, API metrics (C3)."""
import subprocess
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from tests import unit_tasks
from tests.conftest import wait_until
from tests.promtool import promtool
from tests.tasks import failing_task, retrying_task, sample_task
from user_tasks import metrics
from user_tasks.metrics import prometheus
from user_tasks.models import UserTaskStatus
from user_tasks.recovery import reap

QUEUE = 'user_tasks_tests'
SAMPLE = 'tests.tasks.sample_task'


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values now, to compare with later."""

    def __init__(self, *samples):
        self.samples = samples
        self.before = [value(name, **labels) for name, labels in samples]

    def __call__(self):
        return [value(name, **labels) - before for (name, labels), before in zip(self.samples, self.before)]


def finished(task_id, timeout=10):
    """Wait for the row's stop to be announced and the attempt's postrun to have run."""
    assert wait_until(lambda: UserTaskStatus.objects.filter(task_id=task_id, finished__isnull=False).exists(), timeout)
    assert wait_until(lambda: task_id not in prometheus._running, timeout)


def test_succeeded_task_counts_every_stage(worker, user):
    delta = Delta(
        ('user_tasks_submitted_total', {'task': SAMPLE, 'queue': QUEUE}),
        ('user_tasks_started_total', {'task': SAMPLE, 'queue': QUEUE}),
        ('user_tasks_completed_total', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'succeeded'}),
        ('user_tasks_duration_seconds_count', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'succeeded'}),
        ('user_tasks_queue_wait_seconds_count', {'task': SAMPLE, 'queue': QUEUE}),
        ('user_tasks_steps_completed_total', {'task': SAMPLE}),
    )
    result = sample_task.apply_async((user.pk,), {'steps': 3})
    assert result.get(timeout=10, interval=0.01) == 'task'
    finished(result.id)
    assert delta() == [1, 1, 1, 1, 1, 3]
    assert value('user_tasks_in_progress', task=SAMPLE, queue=QUEUE) == 0


def test_failure_counts_error_type_and_outcome(worker, user):
    task = 'tests.tasks.failing_task'
    delta = Delta(
        ('user_tasks_completed_total', {'task': task, 'queue': QUEUE, 'outcome': 'failed'}),
        ('user_tasks_failures_total', {'task': task, 'queue': QUEUE, 'error_type': 'ValueError'}),
        ('user_tasks_duration_seconds_count', {'task': task, 'queue': QUEUE, 'outcome': 'failed'}),
    )
    result = failing_task.apply_async((user.pk,))
    finished(result.id)
    assert delta() == [1, 1, 1]


def test_retry_counts_attempts_and_one_outcome(worker, user):
    task = 'tests.tasks.retrying_task'
    delta = Delta(
        ('user_tasks_started_total', {'task': task, 'queue': QUEUE}),
        ('user_tasks_retries_total', {'task': task, 'queue': QUEUE}),
        ('user_tasks_completed_total', {'task': task, 'queue': QUEUE, 'outcome': 'succeeded'}),
        ('user_tasks_queue_wait_seconds_count', {'task': task, 'queue': QUEUE}),
    )
    result = retrying_task.apply_async((user.pk,), {'succeed_on': 2})
    finished(result.id)
    assert delta() == [2, 1, 1, 1]  # queue wait: publish to the first start only


def test_canceled_while_running_counts_canceled_with_duration(worker, user):
    task = 'tests.unit_tasks.canceling_task'
    delta = Delta(('user_tasks_completed_total', {'task': task, 'queue': QUEUE, 'outcome': 'canceled'}),
                  ('user_tasks_duration_seconds_count', {'task': task, 'queue': QUEUE, 'outcome': 'canceled'}))
    result = unit_tasks.canceling_task.apply_async((user.pk,))
    finished(result.id)
    assert delta() == [1, 1]


@pytest.mark.django_db
def test_canceled_while_pending_has_no_duration(make_status, monkeypatch, django_capture_on_commit_callbacks):
    from user_tasks import signals
    monkeypatch.setattr(signals.celery_app.control, 'revoke', lambda *a, **k: None)
    status = make_status()
    delta = Delta(('user_tasks_completed_total', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'canceled'}),
                  ('user_tasks_duration_seconds_count', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'canceled'}))
    with django_capture_on_commit_callbacks(execute=True):
        assert status.cancel()
    assert delta() == [1, 0]


@pytest.mark.django_db
def test_containers_are_not_counted(make_status, django_capture_on_commit_callbacks):
    status = make_status(is_container=True, task_class='celery.group')
    before = value('user_tasks_completed_total', task='celery.group', queue=QUEUE, outcome='succeeded')
    with django_capture_on_commit_callbacks(execute=True):
        status.succeed()
    assert value('user_tasks_completed_total', task='celery.group', queue=QUEUE, outcome='succeeded') == before == 0


@pytest.mark.django_db
def test_reaper_recovery_is_counted(make_status, django_capture_on_commit_callbacks):
    long_ago = timezone.now() - timedelta(days=365)
    stale = make_status(state=UserTaskStatus.IN_PROGRESS)
    UserTaskStatus.objects.filter(pk=stale.pk).update(heartbeat=long_ago, started=long_ago)
    delta = Delta(('user_tasks_stale_recovered_total', {'task': SAMPLE, 'reason': 'stale'}),
                  ('user_tasks_failures_total', {'task': SAMPLE, 'queue': QUEUE, 'error_type': '_unknown'}),
                  ('user_tasks_completed_total', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'failed'}))
    with django_capture_on_commit_callbacks(execute=True):
        assert reap()['stale'] == 1
    assert delta() == [1, 1, 1]


def test_error_types_are_capped(monkeypatch):
    monkeypatch.setattr(prometheus, 'MAX_ERROR_TYPES', 2)
    monkeypatch.setattr(prometheus, '_error_types', set())
    names = [prometheus.error_type(exc) for exc in (ValueError(), KeyError(), OSError(), ValueError())]
    assert names == ['ValueError', 'KeyError', '_other', 'ValueError']

    class Custom(Exception):
        pass
    monkeypatch.setattr(prometheus, '_error_types', set())
    assert prometheus.error_type(Custom()) == 'tests.test_metrics.test_error_types_are_capped.<locals>.Custom'


def test_telemetry_failure_never_breaks_a_task(worker, user, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('telemetry is broken')
    monkeypatch.setattr(prometheus.COMPLETED, 'labels', broken)
    before = value('user_tasks_telemetry_errors_total', stage='metrics')
    result = sample_task.apply_async((user.pk,))
    assert result.get(timeout=10, interval=0.01) == 'task'
    finished(result.id)
    assert UserTaskStatus.objects.get(task_id=result.id).state == UserTaskStatus.SUCCEEDED
    assert value('user_tasks_telemetry_errors_total', stage='metrics') == before + 1


def test_disconnected_records_nothing(worker, user):
    delta = Delta(('user_tasks_submitted_total', {'task': SAMPLE, 'queue': QUEUE}),
                  ('user_tasks_completed_total', {'task': SAMPLE, 'queue': QUEUE, 'outcome': 'succeeded'}))
    metrics.disconnect()
    try:
        result = sample_task.apply_async((user.pk,))
        assert result.get(timeout=10, interval=0.01) == 'task'
        assert wait_until(lambda: UserTaskStatus.objects.filter(task_id=result.id, finished__isnull=False).exists())
    finally:
        metrics.connect()
    assert delta() == [0, 0]


def test_build_info_and_known_label_sets_are_exported():
    from user_tasks import __version__
    assert value('user_tasks_build_info', version=__version__) == 1
    assert REGISTRY.get_sample_value('user_tasks_api_requests_total', {'operation': 'cancel', 'code_class': '5xx'}) == 0
    assert REGISTRY.get_sample_value('user_tasks_telemetry_errors_total', {'stage': 'exporter'}) is not None


# -- the /metrics view -----------------------------------------------------------------------

URL = '/user_tasks/metrics'


@pytest.mark.django_db
def test_metrics_view_access(django_user_model, settings):
    settings.USER_TASKS_METRICS_TOKEN = 's3cret'
    client = Client()
    assert client.get(URL).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION='Bearer wrong').status_code == 403
    assert client.get(URL, HTTP_AUTHORIZATION='Bearer s3cret').status_code == 200
    django_user_model.objects.create_user('plain', password='pw')
    client.login(username='plain', password='pw')
    assert client.get(URL).status_code == 403
    django_user_model.objects.create_user('staff', password='pw', is_staff=True)
    client.login(username='staff', password='pw')
    response = client.get(URL)
    assert response.status_code == 200
    assert b'user_tasks_build_info' in response.content
    assert client.post(URL).status_code == 405


@pytest.mark.django_db
def test_metrics_view_without_token_setting_refuses_any_bearer(settings):
    settings.USER_TASKS_METRICS_TOKEN = None
    assert Client().get(URL, HTTP_AUTHORIZATION='Bearer ').status_code == 403


@pytest.mark.django_db
def test_exposition_passes_promtool_check_metrics(worker, user, settings):
    settings.USER_TASKS_METRICS_TOKEN = 'tok'
    result = failing_task.apply_async((user.pk,))
    finished(result.id)
    body = Client().get(URL, HTTP_AUTHORIZATION='Bearer tok').content
    for name in ('user_tasks_submitted_total', 'user_tasks_duration_seconds_bucket', 'user_tasks_in_progress',
                 'user_tasks_failures_total'):
        assert name.encode() in body
    check = subprocess.run([promtool(), 'check', 'metrics'], input=body, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


# -- REST API ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_api_requests_are_counted_by_operation_and_class(client, admin_user, make_status):
    client.force_login(admin_user)
    status = make_status(user=admin_user)
    delta = Delta(('user_tasks_api_requests_total', {'operation': 'list', 'code_class': '2xx'}),
                  ('user_tasks_api_requests_total', {'operation': 'detail', 'code_class': '4xx'}),
                  ('user_tasks_api_request_duration_seconds_count', {'operation': 'list', 'code_class': '2xx'}),
                  ('user_tasks_api_requests_total', {'operation': 'delete', 'code_class': '2xx'}))
    assert client.get('/api/tasks/v0/tasks/').status_code == 200
    assert client.get('/api/tasks/v0/tasks/00000000-0000-0000-0000-000000000000/').status_code == 404
    assert client.delete(f'/api/tasks/v0/tasks/{status.uuid}/').status_code == 204
    assert delta() == [1, 1, 1, 1]

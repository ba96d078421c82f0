"""
Observability against real parts: a real Prometheus, a real prefork worker, real spans.

One module-wide run (the ``observed`` fixture) starts

- a Prometheus server (the Debian ``prometheus`` binary) on a free loopback port, with its
  config and storage in a temporary directory, a 1 s scrape interval and the shipped alert
  rules loaded, scraping the web ``/user_tasks/metrics`` of pytest-django's live server
  (with the ``USER_TASKS_METRICS_TOKEN`` bearer token) and the worker's exporter;
- a ``celery worker`` (prefork, two children, ``--max-tasks-per-child`` 2 so children are
  recycled, ``PROMETHEUS_MULTIPROC_DIR`` in a temporary directory, the exporter on
  ``USER_TASKS_METRICS_PORT``) whose children write their spans to a file
  (``tests/span_file.py``);

then runs succeeding, failing, retrying (and retried-to-death) and canceled tasks, each
published inside a span of this process, runs the reaper and the purge through the worker
(as the Tutor plugin's beat does), and calls the status REST API on the live server.  The
tests then evaluate every PromQL expression of the Grafana dashboard and every alert
expression without its final comparison through Prometheus' HTTP API (each must return
data), check that no alert fires and that the alerts on the database gauges are quiet on
this healthy site, lint both scrape bodies with ``promtool check metrics``, check that the
totals of recycled children survive while the multiprocess directory stays bounded, and
check the worker's spans against this process's.  The worker's exporter requires the
same bearer token as the web view.

It runs in the PostgreSQL + Redis pass of ``make test-integration`` only: what it checks
does not depend on the database or broker, and a second run would only double its time.
The MariaDB + RabbitMQ pass skips it with that reason.  Without ``prometheus`` it skips,
except under ``CI=true`` where ``.ci/run`` installs it and its absence is a failure.
"""
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from base64 import b64encode

import pytest
import yaml
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test.utils import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import settings as test_settings
from tests import span_file
from tests.celery import app as celery_app
from tests.integration.workers import FaultWorker, alive, children_of, free_port, wait_for
from tests.tasks import failing_task, retrying_task, sample_task, slow_task
from user_tasks.conf import settings as ut_settings
from user_tasks.metrics import database as ut_database
from user_tasks.metrics import prometheus as ut_prometheus
from user_tasks.models import PeriodicJobRun, UserTaskStatus
from user_tasks.tasks import purge_old_user_tasks, reap_stale_user_tasks

pytestmark = [
    pytest.mark.django_db(transaction=True), pytest.mark.timeout(150),
    pytest.mark.skipif(
        (test_settings.DB_KIND, test_settings.BROKER_KIND) != ('postgres', 'redis'),
        reason='the real-Prometheus test runs in the postgres+redis pass of the integration suite only (this is '
               f'{test_settings.DB_KIND}+{test_settings.BROKER_KIND}): what it checks does not depend on the '
               'database or the broker'),
]

S = UserTaskStatus
METRICS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           'user_tasks', 'metrics')
DASHBOARD = os.path.join(METRICS_DIR, 'grafana', 'user_tasks.json')
RULES = os.path.join(METRICS_DIR, 'alerts', 'user_tasks.rules.yml')
IN_CI = os.environ.get('CI', '').lower() == 'true'
RUN = uuid.uuid4().hex[:8]
QUEUE = f"{os.environ.get('USER_TASKS_TEST_QUEUE', 'user_tasks_integration')}_obs_{os.getpid()}_{RUN}"
WEB_JOB, WORKER_JOB = 'user-tasks-web', 'user-tasks-worker'
TOKEN = f'obs-{uuid.uuid4().hex}'
MAX_TASKS_PER_CHILD = 2
# Substitutions for Grafana's variables: multi-value variables are used with =~, so a regex.
VARIABLES = {'job': '.*', 'queue': '.*', 'task': '.*', 'datasource': 'prometheus',
             '__rate_interval': '1m', '__interval': '1m', '__range': '5m'}
POLL = 0.1

# Panels that must show a positive value after the run (the others may rightly be zero:
# nothing in progress, purged, recovered, 5xx, or telemetry errors).
ACTIVE_PANELS = (
    'Submitted per minute', 'Success ratio', 'p95 duration', 'p95 queue wait', 'Completed by outcome',
    'Submitted and started per queue', 'Failures by task', 'Retries by task', 'Top error types',
    'Duration (heatmap)', 'Duration p50 / p95 / p99 by task', 'Queue wait (heatmap)', 'Queue wait p95 by queue',
    'Steps completed per second', 'Canceled per second', 'Requests by operation', 'Latency p95 by operation',
    'Scrape targets up', 'Versions', 'Since the last reaper run', 'Since the last purge run',
)
# The panels of the database gauges (issue 14): each must have data from the web job alone.
DATABASE_PANELS = ('Oldest pending age', 'Stale in progress', 'Since the last reaper run', 'Since the last purge run',
                   'Unfinished tasks by state', 'Waiting tasks by task')
# Alerts on the database gauges: their whole expression (comparison included) is false on this healthy run.
QUIET_ALERTS = ('UserTasksNotStarting', 'UserTasksStaleInProgress', 'UserTasksReaperNotRunning',
                'UserTasksPurgeNotRunning', 'UserTasksApiErrors', 'UserTasksTelemetryErrors',
                'UserTasksInProgressNotCompleting')
# What the run publishes: (task, kwargs, final state, attempts).
SUCCEEDING, FAILING, RETRIED, RETRIED_OUT = 6, 2, 2, 1


class Response:
    """What ``http_get`` read: status code and body."""

    def __init__(self, status_code, content):
        self.status_code = status_code
        self.content = content
        self.text = content.decode('utf-8', 'replace')

    def json(self):
        return json.loads(self.content)


def http_get(url, params=None, headers=None, timeout=10):
    """A GET with the standard library (errors are responses too)."""
    if params:
        url = f'{url}?{urllib.parse.urlencode(params)}'
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return Response(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read())




# -- Prometheus --------------------------------------------------------------------------

class Prometheus:
    """A ``prometheus`` server this test owns: loopback port, temporary config and storage."""

    def __init__(self, directory, binary, scrape_configs):
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.config = os.path.join(directory, 'prometheus.yml')
        self.log_path = os.path.join(directory, 'prometheus.log')
        rules = os.path.join(directory, 'user_tasks.rules.yml')
        shutil.copy(RULES, rules)
        with open(self.config, 'w', encoding='utf-8') as stream:
            yaml.safe_dump({
                'global': {'scrape_interval': '1s', 'scrape_timeout': '1s', 'evaluation_interval': '1s'},
                'rule_files': [rules],
                'scrape_configs': scrape_configs,
            }, stream)
        self.process = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, 'ab')
        self.process = subprocess.Popen(
            [self.binary, f'--config.file={self.config}', f'--storage.tsdb.path={self.directory}/data',
             f'--web.listen-address=127.0.0.1:{self.port}', '--log.level=warn'],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def ready():
            if self.process.poll() is not None:
                pytest.fail(f'prometheus exited with {self.process.returncode}:\n{self.log_tail()}', pytrace=False)
            try:
                return http_get(f'{self.url}/-/ready', timeout=1).status_code == 200
            except OSError:
                return False
        wait_for('prometheus to be ready', ready, 30)
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log:
            self._log.close()

    def log_tail(self, limit=5000):
        with open(self.log_path, 'rb') as stream:
            stream.seek(max(0, os.path.getsize(self.log_path) - limit))
            return stream.read().decode('utf-8', 'replace')

    def api(self, path, **params):
        response = http_get(f'{self.url}/api/v1/{path}', params=params)
        body = response.json()
        assert body.get('status') == 'success', f'{path} {params}: {response.status_code} {body}'
        return body['data']

    def query(self, expr):
        """Instant query now: the result vector (a list of {'metric', 'value'})."""
        data = self.api('query', query=expr)
        assert data['resultType'] == 'vector', (expr, data['resultType'])
        return data['result']

    def value(self, expr):
        result = self.query(expr)
        return float(result[0]['value'][1]) if result else None

    def targets_up(self):
        targets = self.api('targets', state='active')['activeTargets']
        return {target['labels']['job']: target['health'] for target in targets}


# -- what the run leaves behind ----------------------------------------------------------

class Observed:
    """The handles and results of the module's run, for the tests to check."""

    def __init__(self):
        self.prometheus = None
        self.worker = None
        self.multiproc_dir = None
        self.span_path = None
        self.exporter_url = None
        self.web_url = None
        self.published = []   # (kind, request span, AsyncResult)
        self.local_spans = []
        self.rows = {}        # task id -> final row
        self.job_runs = {}    # job -> last run, as recorded
        self.alerts = {}      # what Prometheus said about the alerts at the end of the run


def _test_tracer_provider():
    """This process's SDK provider (set once per process), with a fresh in-memory exporter."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), 'another provider is installed in this process'
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _prometheus_binary():
    binary = shutil.which('prometheus') or ('/usr/bin/prometheus' if os.path.exists('/usr/bin/prometheus') else None)
    if binary is None or shutil.which('promtool') is None:
        message = 'the Debian package prometheus (prometheus and promtool) is not installed'
        if IN_CI:
            pytest.fail(f'{message}; under CI=true .ci/run must install it', pytrace=False)
        pytest.skip(message)
    return binary


def _publish(observed, tracer, kind, task, user, **kwargs):
    with tracer.start_as_current_span(f'request {kind}') as span:
        result = task.apply_async(kwargs={'user_id': user.pk, **kwargs})
    observed.published.append((kind, span, result))
    return result


def _row(task_id):
    return UserTaskStatus.objects.filter(task_id=task_id).first()


def _api_calls(observed, live_server, user, password):
    """The task owner's status API requests on the live server (counted in the web process's metrics)."""
    basic = {'Authorization': 'Basic ' + b64encode(f'{user.username}:{password}'.encode()).decode()}
    base = f'{live_server.url}/api/tasks/v0'
    codes = {}
    for name, url in (('list', f'{base}/tasks/'), ('artifact_list', f'{base}/artifacts/'),
                      ('missing', f'{base}/tasks/{uuid.uuid4()}/')):
        response = http_get(url, headers=basic)
        codes[name] = response.status_code
        if name == 'artifact_list':
            body = response.json()
            artifacts = body['results'] if isinstance(body, dict) else body
            assert artifacts, body
            detail = http_get(artifacts[0]['status'], headers=basic)  # the status row's detail URL
            codes['detail'] = detail.status_code
            assert detail.status_code == 200, (artifacts[0], detail.text)
    assert codes == {'list': 200, 'artifact_list': 200, 'detail': 200, 'missing': 404}, codes


@pytest.fixture(scope='module')
def observed(integration_services, django_db_setup, django_db_blocker, live_server,
             tmp_path_factory):
    """Prometheus scraping the live server and a real worker while it runs every kind of task."""
    binary = _prometheus_binary()
    directory = tmp_path_factory.mktemp('observability')
    result = Observed()
    result.multiproc_dir = str(directory / 'multiproc')
    os.mkdir(result.multiproc_dir)
    result.span_path = str(directory / 'worker-spans.jsonl')
    exporter_port = free_port()
    result.exporter_url = f'http://127.0.0.1:{exporter_port}/metrics'
    result.web_url = f'{live_server.url}/user_tasks/metrics'
    live = live_server.url.split('//', 1)[1]

    saved_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = QUEUE
    ut_prometheus._routes.clear()  # routes cached before the queue switch
    ut_settings.USER_TASKS_METRICS_TOKEN = TOKEN
    hosts = override_settings(ALLOWED_HOSTS=['localhost', '127.0.0.1'])  # the live server's, for the scrapes
    hosts.enable()
    local = _test_tracer_provider()
    result.worker = FaultWorker(str(directory), f'ut_obs_{os.getpid()}_{RUN}', QUEUE,
                                django_settings.DATABASES['default']['NAME'], concurrency=2, env={
                                    'PROMETHEUS_MULTIPROC_DIR': result.multiproc_dir,
                                    'USER_TASKS_TEST_METRICS_PORT': f'127.0.0.1:{exporter_port}',
                                    'USER_TASKS_TEST_METRICS_TOKEN': TOKEN,
                                    'USER_TASKS_TEST_MAX_TASKS_PER_CHILD': str(MAX_TASKS_PER_CHILD),
                                    'USER_TASKS_TEST_SPAN_FILE': result.span_path,
                                })
    result.prometheus = Prometheus(str(directory), binary, [
        {'job_name': WEB_JOB, 'metrics_path': '/user_tasks/metrics',
         'authorization': {'type': 'Bearer', 'credentials': TOKEN},
         'static_configs': [{'targets': [live]}]},
        {'job_name': WORKER_JOB, 'authorization': {'type': 'Bearer', 'credentials': TOKEN},
         'static_configs': [{'targets': [f'127.0.0.1:{exporter_port}']}]},
    ])
    # The live server's metrics view reads the database at every scrape, all along the run.
    unblocked = django_db_blocker.unblock()
    unblocked.__enter__()  # pylint: disable=unnecessary-dunder-call
    try:
        result.worker.start()
        result.prometheus.start()
        result.worker.wait_ready()
        prom = result.prometheus
        wait_for('both scrape targets up', lambda: prom.targets_up() == {WEB_JOB: 'up', WORKER_JOB: 'up'}, 30)
        # The zero-initialised series are scraped before any task runs, so increase() sees every step.
        labels = f'queue="{QUEUE}",task="tests.tasks.sample_task"'
        wait_for('the zero series of both jobs in prometheus', lambda: (
            prom.query(f'user_tasks_started_total{{job="{WORKER_JOB}",{labels}}}')
            and prom.query(f'user_tasks_submitted_total{{job="{WEB_JOB}",{labels}}}')
        ), 15)
        with django_db_blocker.unblock():
            password = uuid.uuid4().hex
            user = get_user_model().objects.create_user(f'obs-{RUN}', password=password, is_superuser=True)
            _run_tasks(result, local, user)
            _run_periodic_jobs()
            result.rows.update({row.task_id: row for row in UserTaskStatus.objects.filter(
                task_id__in=[published.id for _, _, published in result.published])})
            _api_calls(result, live_server, user, password)
        result.local_spans = list(local.get_finished_spans())
        expected = SUCCEEDING + FAILING + RETRIED + RETRIED_OUT + 1
        wait_for(f'prometheus to scrape all {expected} completions from the worker',
                  lambda: prom.value(f'sum(user_tasks_completed_total{{job="{WORKER_JOB}"}})') == expected, 20)
        wait_for('prometheus to scrape the API requests',
                  lambda: (prom.value(f'sum(user_tasks_api_requests_total{{job="{WEB_JOB}"}})') or 0) >= 4, 20)
        ut_database.clear_cache()
        try:
            wait_for('prometheus to scrape the periodic jobs\' runs from the web view', lambda: all(
                (prom.value(f'max(user_tasks_last_{job}_run_timestamp_seconds{{job="{WEB_JOB}"}})') or 0) > 0
                for job in ('reaper', 'purge')), 20)
        except pytest.fail.Exception:
            body = http_get(result.web_url, headers={'Authorization': f'Bearer {TOKEN}'}).text
            pytest.fail('the web view does not show the periodic jobs: '
                        + '\n'.join(line for line in body.splitlines() if 'last_' in line or 'errors' in line),
                        pytrace=False)
        time.sleep(2)  # a couple more scrapes, so every rate() window holds the final values
        _snapshot_alerts(result)  # now: the transactional tests empty the tables after each test
        yield result
    finally:
        result.prometheus.stop()
        result.worker.stop()
        unblocked.__exit__(None, None, None)  # pylint: disable=unnecessary-dunder-call
        celery_app.conf.task_default_queue = saved_queue
        ut_prometheus._routes.clear()
        del ut_settings.USER_TASKS_METRICS_TOKEN
        hosts.disable()
        try:
            with celery_app.connection_for_write() as connection:
                celery_app.amqp.queues[QUEUE](connection.default_channel).delete()
        except Exception as exc:
            print(f'could not delete the queue {QUEUE}: {exc!r}')


def _run_tasks(observed, local, user):
    """Publish every kind of task (each inside a span of this process) and wait until all ended."""
    tracer = trace.get_tracer('tests.observability')
    slow = _publish(observed, tracer, 'canceled', slow_task, user, steps=100, delay=0.1)
    for index in range(SUCCEEDING):
        _publish(observed, tracer, 'succeeded', sample_task, user, label=f'obs {index}', steps=3)
    for _ in range(FAILING):
        _publish(observed, tracer, 'failed', failing_task, user, message='disk full')
    for _ in range(RETRIED):
        _publish(observed, tracer, 'retried', retrying_task, user, succeed_on=2)
    _publish(observed, tracer, 'retried_out', retrying_task, user, succeed_on=5)  # max_retries=2: fails

    def running():
        row = _row(slow.id)
        return row is not None and row.state == S.IN_PROGRESS and row.completed_steps >= 2
    wait_for('the slow task to make progress', running, 30)
    assert _row(slow.id).cancel() is True

    ids = [published.id for _, _, published in observed.published]

    def ended():
        rows = list(UserTaskStatus.objects.filter(task_id__in=ids, finished__isnull=False))
        return len(rows) == len(ids) and rows
    try:
        wait_for(f'{len(ids)} tasks to end', ended, 60)
    except pytest.fail.Exception:
        pytest.fail(f'not every task ended; worker log:\n{observed.worker.log_tail()}', pytrace=False)
    # The worker's spans end at task_postrun, just after the final state is committed.
    wait_for('the worker to export every execute span', lambda: len(
        [span for span in span_file.read(observed.span_path) if span['name'] == 'user_tasks.execute'])
        >= SUCCEEDING + FAILING + 2 * RETRIED + 3 * RETRIED_OUT + 1, 15)
    assert local.get_finished_spans()


def _snapshot_alerts(observed):
    """Each alert's whole expression and the firing alerts, evaluated at the end of the healthy run."""
    prom = observed.prometheus
    observed.job_runs = {job: run.timestamp() for job, run in PeriodicJobRun.objects.values_list('job', 'last_run')}
    rules = {rule['alert']: rule['expr'] for rule in alert_rules()}
    observed.alerts = {
        'firing': prom.query('ALERTS{alertstate="firing"}'),
        'true': {name: prom.query(expr) for name, expr in rules.items()},
        # The same check with the reaper's threshold below zero: it must see the condition (the check can fail).
        'control': prom.query(rules['UserTasksReaperNotRunning'].replace('> 1200', '> -1')),
        'since_reaper': prom.value(f'time() - max(user_tasks_last_reaper_run_timestamp_seconds{{job="{WEB_JOB}"}})'),
        'reaper': prom.value(f'max(user_tasks_last_reaper_run_timestamp_seconds{{job="{WEB_JOB}"}})'),
        'oldest_pending': prom.value(f'max(user_tasks_oldest_pending_age_seconds{{job="{WEB_JOB}"}})'),
        'stale': prom.value(f'max(user_tasks_stale_in_progress{{job="{WEB_JOB}"}})'),
        'jobs': {name: {series['metric']['job'] for series in prom.query(name)} for name in (
            'user_tasks_tasks', 'user_tasks_oldest_pending_age_seconds', 'user_tasks_stale_in_progress',
            'user_tasks_last_reaper_run_timestamp_seconds', 'user_tasks_last_purge_run_timestamp_seconds')},
    }


def _run_periodic_jobs():
    """The reaper and the purge, sent to the worker as a beat would; wait until their runs are recorded."""
    started = time.time()
    reap_stale_user_tasks.delay()
    purge_old_user_tasks.delay()

    def recorded():
        runs = dict(PeriodicJobRun.objects.values_list('job', 'last_run'))
        return len(runs) == 2 and all(run.timestamp() >= started - 1 for run in runs.values())
    wait_for('the worker to run the reaper and the purge', recorded, 30)


# -- PromQL ------------------------------------------------------------------------------

def _substitute(expr):
    def replace(match):
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f'unknown Grafana variable ${name} in {expr}'
        return VARIABLES[name]
    substituted = re.sub(r'\$\{(\w+)(?::\w+)?\}|\$(\w+)', replace, expr)
    assert '$' not in substituted, substituted
    return substituted


def dashboard_queries():
    """(panel title, expr) of every target of every panel (rows' nested panels included)."""
    with open(DASHBOARD, encoding='utf-8') as stream:
        dashboard = json.load(stream)
    queries = []

    def walk(panels):
        for panel in panels:
            for target in panel.get('targets', []):
                if target.get('expr'):
                    queries.append((panel.get('title'), target['expr']))
            walk(panel.get('panels', []))
    walk(dashboard['panels'])
    return dashboard, queries


_COMPARISON = re.compile(r'^\s*\((?P<base>.*)\)\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?[0-9.e+]+\s*$', re.S)


def without_comparison(expr):
    """An alert expression ``(<base>) <op> <threshold>`` without its final comparison: ``<base>``."""
    match = _COMPARISON.match(expr)
    assert match, f'alert expression is not "(<base>) <comparison> <number>": {expr}'
    base = match.group('base')
    depth = 0
    for char in base:  # the outer parentheses must enclose the whole base
        depth += {'(': 1, ')': -1}.get(char, 0)
        assert depth >= 0, f'unbalanced outer parentheses in {expr}'
    assert depth == 0, f'unbalanced outer parentheses in {expr}'
    return base


def alert_rules():
    with open(RULES, encoding='utf-8') as stream:
        return [rule for group in yaml.safe_load(stream)['groups'] for rule in group['rules'] if 'alert' in rule]


def test_every_dashboard_query_returns_data(observed):
    prom = observed.prometheus
    _, queries = dashboard_queries()
    assert len(queries) >= 20
    results = {(title, expr): prom.query(_substitute(expr)) for title, expr in queries}
    empty = [(title, _substitute(expr)) for (title, expr), result in results.items() if not result]
    assert not empty, f'dashboard queries without data: {json.dumps(empty, indent=1)}'

    def values(title):
        return [float(series['value'][1]) for (name, _), result in results.items() if name == title
                for series in result]
    # Every panel shows a number (not only NaN: a histogram born at its first observation would).
    not_finite = [title for title, _ in queries if not any(math.isfinite(value) for value in values(title))]
    assert not not_finite, f'panels with only NaN/Inf: {not_finite}'
    # What this run did shows up, first occurrences included (series exported at zero beforehand).
    idle = [title for title in ACTIVE_PANELS if not any(value > 0 for value in values(title))]
    assert not idle, f'panels that do not show the run\'s tasks: {idle}'
    # Both scrape targets feed the dashboard (the job variable offers both).
    jobs = {series['metric']['job'] for series in prom.query('user_tasks_build_info')}
    assert jobs == {WEB_JOB, WORKER_JOB}
    # The database gauges' panels have data from the web job alone (no worker needed).
    web_only = dict(VARIABLES, job=WEB_JOB)
    for title, expr in queries:
        if title in DATABASE_PANELS:
            substituted = re.sub(r'\$(\w+)', lambda match: web_only[match.group(1)], expr)
            assert prom.query(substituted), (title, substituted)
    assert {title for title, _ in queries} >= set(DATABASE_PANELS)


def test_every_dashboard_variable_has_values(observed):
    """The variables' ``label_values(metric{...}, label)`` queries, through the series API."""
    dashboard, _ = dashboard_queries()
    checked = 0
    for variable in dashboard['templating']['list']:
        if variable.get('type') != 'query':
            continue
        query = variable['query']['query'] if isinstance(variable['query'], dict) else variable['query']
        match = re.fullmatch(r'label_values\((.+),\s*(\w+)\)', query.strip())
        assert match, f'unexpected variable query {query}'
        values = observed.prometheus.api(f'label/{match.group(2)}/values', **{'match[]': _substitute(match.group(1))})
        assert values, f'variable {variable["name"]} has no values: {query}'
        checked += 1
    assert checked == 3


def test_every_alert_expression_returns_data(observed):
    prom = observed.prometheus
    rules = alert_rules()
    assert len(rules) >= 7
    empty = [(rule['alert'], without_comparison(rule['expr'])) for rule in rules
             if not prom.query(without_comparison(rule['expr']))]
    if empty:
        counts = prom.query('user_tasks_submitted_total > 0 or user_tasks_started_total > 0')
        pytest.fail(f'alert expressions without data: {json.dumps(empty, indent=1)}\n'
                    f'submitted and started series: {json.dumps(counts)}')
    # Prometheus loaded the rules file and evaluates every rule without error.
    loaded = [rule for group in prom.api('rules')['groups'] for rule in group['rules']]
    assert {rule['name'] for rule in loaded} >= {rule['alert'] for rule in rules}
    assert all(rule['health'] == 'ok' for rule in loaded), [(r['name'], r.get('lastError')) for r in loaded]


def test_scrape_bodies_pass_promtool_check_metrics(observed):
    web = http_get(observed.web_url, headers={'Authorization': f'Bearer {TOKEN}'})
    worker = http_get(observed.exporter_url, headers={'Authorization': f'Bearer {TOKEN}'})
    assert http_get(observed.web_url).status_code == 401
    assert http_get(observed.exporter_url).status_code == 401   # the worker's exporter is guarded too
    assert http_get(observed.exporter_url, headers={'Authorization': 'Bearer wrong'}).status_code == 403
    for name, response in (('web', web), ('worker', worker)):
        assert response.status_code == 200, (name, response.status_code)
        assert 'user_tasks_completed_total' in response.text
        checked = subprocess.run(['promtool', 'check', 'metrics'], input=response.content, capture_output=True,
                                 timeout=30, check=False)
        assert checked.returncode == 0, (name, checked.stdout.decode(), checked.stderr.decode())


def test_recycled_children_keep_their_counts_and_the_directory_stays_bounded(observed):
    prom = observed.prometheus
    worker_pids = {span['pid'] for span in span_file.read(observed.span_path)}
    assert len(worker_pids) > 2, f'children were not recycled (--max-tasks-per-child): pids {worker_pids}'
    # Every attempt and outcome of the run, though most children that counted them are gone.
    attempts = SUCCEEDING + FAILING + 2 * RETRIED + 3 * RETRIED_OUT + 1
    assert prom.value(f'sum(user_tasks_started_total{{job="{WORKER_JOB}"}})') == attempts
    by_outcome = {series['metric']['outcome']: float(series['value'][1]) for series in prom.query(
        f'sum by (outcome) (user_tasks_completed_total{{job="{WORKER_JOB}",queue="{QUEUE}"}})')}
    assert by_outcome == {'succeeded': SUCCEEDING + RETRIED, 'failed': FAILING + RETRIED_OUT, 'canceled': 1}
    assert prom.value(f'sum(user_tasks_retries_total{{job="{WORKER_JOB}"}})') == RETRIED + 2 * RETRIED_OUT
    assert prom.value(f'sum(user_tasks_in_progress{{job="{WORKER_JOB}"}})') == 0
    # Files: the archive per type, plus those of living processes only (main and current children).
    living = {observed.worker.process.pid, *children_of(observed.worker.process.pid)}
    names = [name for name in os.listdir(observed.multiproc_dir) if name.endswith('.db')]
    owners = {name[:-3].rpartition('_')[2] for name in names}
    dead = {owner for owner in owners if owner != 'archive' and not (int(owner) in living and alive(int(owner)))}
    assert not dead, f'files of exited processes left in the multiprocess directory: {sorted(names)}'
    assert 'archive' in owners
    assert len(names) <= 8 * (len(living) + 1), sorted(names)


def test_no_alert_fires_on_a_healthy_run(observed):
    alerts = observed.alerts
    assert not alerts['firing'], alerts['firing']
    assert set(QUIET_ALERTS) <= set(alerts['true'])
    # The whole expression, comparison included, is false: not even pending.
    true_now = {name: alerts['true'][name] for name in QUIET_ALERTS if alerts['true'][name]}
    assert not true_now, true_now
    assert alerts['control'], 'the same query with a threshold the run passes must return the condition'
    # What those alerts read: the reaper and purge ran just now, nothing waits, nothing is stale.
    assert 0 < alerts['since_reaper'] < 120
    assert alerts['oldest_pending'] == 0 and alerts['stale'] == 0


def test_database_gauges_come_from_the_web_view_only(observed):
    for name, jobs in observed.alerts['jobs'].items():
        assert jobs == {WEB_JOB}, (name, jobs)
    assert set(observed.job_runs) == {PeriodicJobRun.REAPER, PeriodicJobRun.PURGE}
    assert observed.alerts['reaper'] == pytest.approx(observed.job_runs[PeriodicJobRun.REAPER])


# -- spans across the publish/execute boundary ---------------------------------------------

def test_worker_spans_join_the_publishers_traces(observed):
    worker_spans = span_file.read(observed.span_path)
    executes = {}
    for span in worker_spans:
        if span['name'] == 'user_tasks.execute':
            executes.setdefault(span['attributes']['messaging.message.id'], []).append(span)
    submits = {dict(span.attributes)['messaging.message.id']: span
               for span in observed.local_spans if span.name == 'user_tasks.submit'}
    expected_attempts = {'succeeded': 1, 'failed': 1, 'retried': 2, 'retried_out': 3, 'canceled': 1}
    final_state = {'succeeded': S.SUCCEEDED, 'failed': S.FAILED, 'retried': S.SUCCEEDED, 'retried_out': S.FAILED,
                   'canceled': S.CANCELED}
    for kind, request, result in observed.published:
        row = observed.rows[result.id]
        assert row.state == final_state[kind], (kind, row.state)
        spans = sorted(executes.get(result.id, []), key=lambda span: span['attributes']['user_tasks.attempt'])
        assert len(spans) == expected_attempts[kind] == row.attempts, (kind, spans)
        request_context = request.get_span_context()
        submit = submits[result.id]
        assert submit.parent.span_id == request_context.span_id
        for attempt, span in enumerate(spans, start=1):
            where = f'{kind} attempt {attempt}'
            assert span['kind'] == 'CONSUMER', where
            assert span['trace_id'] == format(request_context.trace_id, '032x'), where
            assert span['parent_span_id'] in {format(request_context.span_id, '016x'),
                                              format(submit.context.span_id, '016x')}, where
            attributes = span['attributes']
            assert attributes['user_tasks.task.name'] == row.task_class, where
            assert (attributes['messaging.system'], attributes['messaging.destination.name'],
                    attributes['messaging.operation.type']) == ('celery', QUEUE, 'process'), where
            assert attributes['user_tasks.status.id'] == str(row.uuid), where
            assert attributes['user_tasks.attempt'] == attempt, where
            final = attempt == len(spans)
            events = [event['name'] for event in span['events']]
            if not final:
                assert attributes['user_tasks.state'] == S.RETRYING, where
                assert 'user_tasks.retry' in events, where
            else:
                assert attributes['user_tasks.state'] == row.state, where
            if final and row.state == S.FAILED:
                assert span['status'] == 'ERROR', where
                assert 'exception' in events, where
                assert attributes['error.type'], where
            else:
                assert span['status'] == 'UNSET', where
                assert 'exception' not in events, where
            if kind == 'canceled':
                assert 'user_tasks.canceled' in events, where
            if kind == 'succeeded':
                assert attributes['user_tasks.completed_steps'] == 3, where
                assert 'user_tasks.progress' in events, where
    failed = [span for spans in executes.values() for span in spans if span['status'] == 'ERROR']
    assert len(failed) == FAILING + RETRIED_OUT
    # The exception's class, never its message (which can hold user data).
    assert {span['status_description'] for span in failed} == {'ValueError', 'RuntimeError'}
    assert {span['attributes']['error.type'] for span in failed} == {'ValueError', 'RuntimeError'}
    submit_kinds = {span.kind.name for span in observed.local_spans if span.name == 'user_tasks.submit'}
    assert submit_kinds == {'PRODUCER'}

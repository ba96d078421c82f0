"""The alert rules and the Grafana dashboard: structure, promtool check/test, PromQL syntax (C3)."""
import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.promtool import promtool

METRICS = Path(__file__).resolve().parent.parent / 'user_tasks' / 'metrics'
RULES = METRICS / 'alerts' / 'user_tasks.rules.yml'
RULE_TESTS = METRICS / 'alerts' / 'user_tasks.tests.yml'
DASHBOARD = METRICS / 'grafana' / 'user_tasks.json'

#: Grafana's variables, as a test evaluates the expressions: every value, a 5 m window, 1 h range.
SUBSTITUTIONS = {'$__rate_interval': '5m', '$__range': '1h', '$__interval': '1m',
                 '$job': '.*', '$queue': '.*', '$task': '.*'}
FINAL_COMPARISON = re.compile(r'\s*(==|!=|>=|<=|>|<)\s*[0-9.e+-]+\s*$')
EXPECTED_ALERTS = {
    'UserTasksHighFailureRate', 'UserTasksNotStarting', 'UserTasksQueueWaitHigh', 'UserTasksDurationHigh',
    'UserTasksRetryStorm', 'UserTasksInProgressNotCompleting', 'UserTasksApiErrors', 'UserTasksTelemetryErrors',
    'UserTasksBacklogGrowing', 'UserTasksStaleInProgress', 'UserTasksReaperNotRunning', 'UserTasksPurgeNotRunning',
}
DOCS = Path(__file__).resolve().parent.parent / 'docs' / 'observability.rst'
RUNBOOK = 'https://django-user-tasks.readthedocs.io/en/latest/observability.html#'


def dashboard():
    return json.loads(DASHBOARD.read_text())


def panel_expressions():
    """(panel title, PromQL with Grafana's variables substituted) of every dashboard target."""
    result = []
    for panel in dashboard()['panels']:
        for target in panel.get('targets', []):
            expr = target['expr']
            for variable, value in SUBSTITUTIONS.items():
                expr = expr.replace(variable, value)
            result.append((panel['title'], expr))
    return result


def alert_rules():
    return [rule for group in yaml.safe_load(RULES.read_text())['groups'] for rule in group['rules']]


def alert_bases():
    """(alert name, its expression without the final comparison)."""
    result = []
    for rule in alert_rules():
        expr = rule['expr'].strip()
        base = FINAL_COMPARISON.sub('', expr)
        assert base != expr, f"{rule['alert']}: no final comparison in {expr!r}"
        result.append((rule['alert'], base))
    return result


def test_alerts_cover_the_issue_and_are_documented():
    rules = alert_rules()
    assert {rule['alert'] for rule in rules} == EXPECTED_ALERTS
    docs = DOCS.read_text()
    for rule in rules:
        assert rule['labels']['severity'] in ('info', 'warning', 'critical')
        assert rule['annotations']['summary'] and rule['annotations']['description']
        # A runbook anchor that exists in the docs (an explicit label, as Sphinx lowercases it).
        runbook = rule['annotations']['runbook_url']
        assert runbook == f"{RUNBOOK}alert-{rule['alert'].lower()}", rule['alert']
        assert f".. _alert-{rule['alert']}:" in docs, rule['alert']
        assert rule['annotations']['dashboard_url'] == f"/d/{dashboard()['uid']}/user-tasks", rule['alert']


def test_healthy_web_only_site_case_covers_every_alert():
    """The promtool case of a site scraping only its web processes expects no alert, for every rule."""
    cases = yaml.safe_load(RULE_TESTS.read_text())['tests']
    (healthy,) = [case for case in cases if all(not test['exp_alerts'] for test in case['alert_rule_test'])
                  and {test['alertname'] for test in case['alert_rule_test']} == EXPECTED_ALERTS]
    jobs = {re.search(r'job="(\w+)"', series['series']).group(1) for series in healthy['input_series']}
    assert jobs == {'lms', 'cms'}  # the web processes only: no worker target
    names = {series['series'].split('{')[0] for series in healthy['input_series']}
    assert {'user_tasks_started_total', 'user_tasks_submitted_total', 'user_tasks_oldest_pending_age_seconds',
            'user_tasks_last_reaper_run_timestamp_seconds', 'user_tasks_tasks'} <= names


def test_promtool_check_rules():
    check = subprocess.run([promtool(), 'check', 'rules', str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_promtool_test_rules_every_alert_fires():
    tested = set(re.findall(r'alertname: (\w+)', RULE_TESTS.read_text()))
    assert tested == EXPECTED_ALERTS
    run = subprocess.run([promtool(), 'test', 'rules', RULE_TESTS.name], cwd=RULE_TESTS.parent,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dashboard_structure():
    board = dashboard()
    assert isinstance(board['schemaVersion'], int) and board['uid'] and 'user-tasks' in board['tags']
    variables = {var['name']: var for var in board['templating']['list']}
    assert variables['datasource']['type'] == 'datasource' and variables['datasource']['query'] == 'prometheus'
    assert {'job', 'queue', 'task'} <= set(variables)
    ids = [panel['id'] for panel in board['panels']]
    assert len(ids) == len(set(ids))
    titles = {panel['title'] for panel in board['panels'] if panel['type'] == 'row'}
    assert {'Overview', 'Throughput', 'Failures and retries', 'Latency', 'Lifecycle', 'Status API'} <= titles
    for panel in board['panels']:
        grid = panel['gridPos']
        assert grid['x'] + grid['w'] <= 24, panel['title']
        if panel['type'] == 'row':
            continue
        assert panel['datasource']['uid'] == '${datasource}', panel['title']
        assert panel['fieldConfig']['defaults']['unit'], panel['title']
        assert panel['targets'], panel['title']
        for target in panel['targets']:
            assert target['expr'].strip(), panel['title']
            if 'rate(' in target['expr'] and '$__range' not in target['expr']:
                assert '$__rate_interval' in target['expr'], panel['title']
            if 'user_tasks_' in target['expr']:
                assert 'job=~"$job"' in target['expr'], panel['title']


def test_dashboard_and_alert_expressions_parse(tmp_path):
    """Every panel expression and alert base, as recording rules, passes ``promtool check rules``."""
    rules = [{'record': f'check:expr_{index}', 'expr': expr}
             for index, (_, expr) in enumerate(panel_expressions() + alert_bases())]
    path = tmp_path / 'exprs.yml'
    path.write_text(yaml.safe_dump({'groups': [{'name': 'exprs', 'rules': rules}]}))
    check = subprocess.run([promtool(), 'check', 'rules', str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

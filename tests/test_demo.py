"""``DEMO_ONCE=1 python example/demo.py``: the demo's whole scenario, as ``make demo`` runs it, ends well."""
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 150


@pytest.mark.timeout(TIMEOUT + 30)
def test_demo_once_runs_the_scenario_and_exits_0(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith('DJANGO_')}
    env.update({'DEMO_ONCE': '1', 'DEMO_PORT': '0', 'USER_TASKS_DEMO_VAR': str(tmp_path / 'var'),
                'PYTHONUNBUFFERED': '1'})
    try:
        result = subprocess.run([sys.executable, os.path.join('example', 'demo.py')], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f'the demo did not finish within {TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}')
    report = f'exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-5000:]}'
    for log in ('worker.log', 'server.log'):
        path = tmp_path / 'var' / log
        if result.returncode and path.exists():
            report += f'\n--- {log}\n{path.read_text(errors="replace")[-5000:]}'
    assert result.returncode == 0, report
    out = result.stdout
    assert 'Demo OK' in out and 'PROBLEM' not in out, report
    summary = out[out.index('Summary'):]
    for expected in ('Studio-style export    Succeeded  100%', 'Export that fails      Failed',
                     'Chain                  Succeeded  100%', 'Long job               Canceled',
                     'gzip: True', 'error: Unknown course: not-a-course-key', 'REST API: 6 task rows',
                     'Double click: 2 publishes, 1 export'):
        assert expected in summary, report
    assert 'Double click on "Export": 2 publishes -> 1 export (1 row).' in out, report
    for url in ('/user_tasks/', '/api/tasks/v0/tasks/', 'password: '):
        assert url in out, report
    if find_spec('user_tasks.metrics.urls') is not None:
        assert '/user_tasks/metrics' in out and 'Metrics: ' in summary, report

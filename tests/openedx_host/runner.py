"""
Helpers for tests that run the miniature Open edX host in subprocesses.

Each host run gets its own folder (SQLite file, filesystem broker, media), so runs never
share state.  Every subprocess call and wait is bounded.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_ENTRY_POINT = 'user_tasks.plugin.apps:UserTasksPluginConfig'
COMMAND_TIMEOUT = 60
WORKER_STOP_TIMEOUT = 10


def require_entry_points():
    """Fail (never skip) when stevedore could not find the plugin: the package is not installed."""
    for group in ('lms.djangoapp', 'cms.djangoapp'):
        values = [ep.value for ep in entry_points(group=group)]
        if PLUGIN_ENTRY_POINT not in values:
            pytest.fail(f'No {group} entry point for {PLUGIN_ENTRY_POINT} (found {values}); '
                        f'reinstall the package: pip install -e .')


def host_env(work_dir, project, layout, settings='test', **extra):
    """The environment of one host run in ``work_dir``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(('OPENEDX_HOST_', 'USER_TASKS_'))}
    env.update({
        'DJANGO_SETTINGS_MODULE': f'tests.openedx_host.envs.{settings}',
        'OPENEDX_HOST_PROJECT': project,
        'OPENEDX_HOST_LAYOUT': layout,
        'OPENEDX_HOST_DIR': str(work_dir),
        'PYTHONPATH': REPO_ROOT,
        'PYTHONDONTWRITEBYTECODE': '1',
    })
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run(args, env, timeout=COMMAND_TIMEOUT):
    """Run ``python ARGS`` in the repository root; return the CompletedProcess."""
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def run_ok(args, env, timeout=COMMAND_TIMEOUT):
    """Run ``python ARGS`` and fail the test with its output unless it exits 0."""
    result = run(args, env, timeout)
    assert result.returncode == 0, f'{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}'
    return result


def parse_report(result):
    """The JSON after ``REPORT`` in a scenario's output."""
    for line in reversed(result.stdout.splitlines()):
        if line.startswith('REPORT '):
            return json.loads(line[len('REPORT '):])
    raise AssertionError(f'No REPORT line (exit {result.returncode}):\n{result.stdout}\n{result.stderr}')


@contextlib.contextmanager
def celery_worker(env, log_path):
    """A real prefork ``celery worker`` of the host, stopped (then killed) on exit."""
    command = [sys.executable, '-m', 'celery', '-A', 'tests.openedx_host.celery', 'worker', '--pool=prefork',
               '--concurrency=1', '--without-gossip', '--without-mingle', '--without-heartbeat',
               '--loglevel=warning']
    with open(log_path, 'w', encoding='utf-8') as log:
        worker = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=WORKER_STOP_TIMEOUT)


def read_log(path, limit=4000):
    """The tail of a worker log, for assertion messages."""
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()[-limit:]
    except OSError:
        return ''

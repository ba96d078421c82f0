"""
The Studio-shaped export example (``example/studio_export.py``, ``example/studio_views.py``)
run through a real worker in the miniature Studio host, checking the JSON the course
export page polls at every stage: preparing, exporting, compressing, done, and failed.
"""
import json
import types

import pytest

from tests.openedx_host import runner

pytestmark = pytest.mark.timeout(120)

COURSE = 'course-v1:OpenedX+Export101+2026'


@pytest.fixture(scope='module')
def export_run(tmp_path_factory):
    """Run ``tests/openedx_host/studio_scenario.py`` against a worker; return its report."""
    runner.require_entry_points()
    work_dir = tmp_path_factory.mktemp('studio-export')
    gate = work_dir / 'gate'
    gate.mkdir()
    env = runner.host_env(work_dir, 'cms', 'plugin', OPENEDX_HOST_EXAMPLE='1', USER_TASKS_EXAMPLE_EXPORT_GATE=gate)
    runner.run_ok(['-m', 'django', 'migrate', '--no-input', '-v', '0'], env)
    log_path = work_dir / 'worker.log'
    with runner.celery_worker(env, log_path):
        result = runner.run(['-m', 'tests.openedx_host.studio_scenario'], env, timeout=100)
    report = runner.parse_report(result)
    stages = {stage['stage']: stage for stage in report['stages']}
    return types.SimpleNamespace(report=report, stages=stages, worker_log=runner.read_log(log_path))


def stage(run, name):
    found = run.stages.get(name)
    assert found is not None and not found.get('timeout'), (
        f'stage {name} not reached: {json.dumps(run.report, indent=1)}\nworker log:\n{run.worker_log}')
    assert found['http'] == 200
    return found


def test_no_export_yet_is_preparing(export_run):
    assert stage(export_run, 'before')['json'] == {'ExportStatus': 0}


def test_starting_an_export_answers_exporting(export_run):
    assert stage(export_run, 'start')['json'] == {'ExportStatus': 1}


def test_exporting_stage(export_run):
    found = stage(export_run, 'exporting')
    assert found['state'] == 'Exporting'
    assert found['json'] == {'ExportStatus': 1}


def test_compressing_stage(export_run):
    found = stage(export_run, 'compressing')
    assert found['state'] == 'Compressing'
    assert found['json'] == {'ExportStatus': 2}


def test_success_links_the_output(export_run):
    found = stage(export_run, 'succeeded')
    assert found['state'] == 'Succeeded', export_run.worker_log
    assert found['json'] == {'ExportStatus': 3, 'ExportOutput': f'/export_output/{COURSE}'}
    output = export_run.report['output']
    assert output['http'] == 200
    assert 'course-v1_OpenedX_Export101_2026.tar.gz' in output['disposition']
    assert 'course-v1_OpenedX_Export101_2026/course.xml' in output['members']


def test_failure_reports_the_error_as_an_object(export_run):
    found = stage(export_run, 'failed')
    assert found['state'] == 'Failed'
    assert found['json']['ExportStatus'] == -1
    assert isinstance(found['json']['ExportError'], dict)
    assert found['json']['ExportError']['raw_error_msg'] == 'Unknown course: not-a-course'
    # fail() stored the dict as JSON, which is what Studio's view parses.
    assert json.loads(export_run.report['error_artifact']) == {'raw_error_msg': 'Unknown course: not-a-course'}


def test_a_double_click_starts_one_export(export_run):
    double = export_run.report['double_click']
    assert (double['http'], double['json'], double['rows']) == (200, {'ExportStatus': 1}, 1)


def test_at_most_three_active_exports_per_user(export_run):
    limit = export_run.report['limit']
    assert limit['http'] == [200, 200, 429], limit
    assert 'at most 3 tasks' in limit['json'][2]['ExportError']
    assert limit['active'] == 3


def test_a_failed_export_is_tried_again_through_the_rest_api(export_run):
    retry = export_run.report['retry']
    assert retry['http'] == 201, retry
    assert retry['location'].endswith(f"/api/tasks/v0/tasks/{retry['new_uuid']}/")
    # The bad course fails again, as it should; the old row stays and links to the new one.
    assert (retry['old_state'], retry['new_state'], retry['rows']) == ('Failed', 'Failed', 2)

"""
Multi-process mode: children's counters survive them, their gauges go, the files stay bounded.

prometheus_client picks its storage when it is imported, so each scenario runs in a
fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set; it forks short-lived children
(as Celery's prefork pool does with ``--max-tasks-per-child``) and prints what the
collector then sees.
"""
import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import glob, json, os, signal, sys
    from prometheus_client import generate_latest
    from user_tasks.metrics import multiprocess, prometheus, worker

    def files():
        """The ``.db`` files in the directory, sorted."""
        return sorted(os.path.basename(f) for f in glob.glob(os.path.join(multiprocess.directory(), '*.db')))

    def child(graceful):
        prometheus.COMPLETED.labels('t', 'q', 'succeeded').inc()
        prometheus.DURATION.labels('t', 'q', 'succeeded').observe(2)
        prometheus.IN_PROGRESS.labels('t', 'q').inc()
        prometheus.BUILD_INFO.labels('v').set(1)
        if graceful:
            worker.on_worker_process_shutdown(pid=os.getpid())
            os._exit(0)
        os.kill(os.getpid(), signal.SIGKILL)   # like an OOM kill: no shutdown hook

    rounds = int(sys.argv[1])
    counts = []
    for index in range(rounds):
        pid = os.fork()
        if pid == 0:
            child(graceful=index % 2 == 0)
        os.waitpid(pid, 0)
        multiprocess.sweep()           # what the exporter does before every scrape
        counts.append(len(files()))
    prometheus.IN_PROGRESS.labels('t', 'q').inc()   # this (live) process runs one now
    body = generate_latest(multiprocess.registry()).decode()
    print(json.dumps({'pid': os.getpid(), 'counts': counts, 'files': files(), 'body': body}))
''')


def run(tmp_path, rounds):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, '-c', SCRIPT, str(rounds)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sample(body, line_start):
    lines = [line for line in body.splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, (line_start, body)
    return float(lines[0].rsplit(' ', 1)[1])


def test_recycled_children_keep_their_counters_and_leave_bounded_files(tmp_path):
    result = run(tmp_path, rounds=12)
    body = result['body']
    # every child's completion and observation survives it...
    assert sample(body, 'user_tasks_completed_total{outcome="succeeded",queue="q",task="t"}') == 12
    assert sample(body, 'user_tasks_duration_seconds_count{outcome="succeeded",queue="q",task="t"}') == 12
    assert sample(body, 'user_tasks_duration_seconds_bucket{le="2.5",outcome="succeeded",queue="q",task="t"}') == 12
    # ...while the in-progress gauge counts only the living (this process's one).
    assert sample(body, 'user_tasks_in_progress{queue="q",task="t"}') == 1
    # The directory never grows with the children: archives plus this process's files.
    assert max(result['counts']) == min(result['counts']) <= 4
    owners = {name[:-3].rsplit('_', 1)[1] for name in result['files']}
    assert owners - {'archive'} == {str(result['pid'])}, result['files']
    assert {'counter_archive.db', 'histogram_archive.db'} <= set(result['files'])


def test_a_second_run_keeps_totals_across_restarts(tmp_path):
    run(tmp_path, rounds=3)
    result = run(tmp_path, rounds=2)  # the previous interpreter's files are retired at the first sweep
    assert sample(result['body'], 'user_tasks_completed_total{outcome="succeeded",queue="q",task="t"}') == 5


# -- a restart with reused pids (issue 14, item 5) -------------------------------------------

BEFORE_RESTART = textwrap.dedent('''
    import os
    from user_tasks.metrics import multiprocess, prometheus
    multiprocess.claim(current='boot-before-the-restart')
    prometheus.IN_PROGRESS.labels('t', 'q').inc()          # a task was running...
    prometheus.COMPLETED.labels('t', 'q', 'succeeded').inc(7)
    print(os.getpid())
    os._exit(0)                                             # ...when the container was killed
''')

AFTER_RESTART = textwrap.dedent('''
    import json, os, sys
    path = os.environ['PROMETHEUS_MULTIPROC_DIR']
    old_pid, start = sys.argv[1], sys.argv[2]
    # After the restart the kernel hands out the same pids: this process got the old one's.
    for name in os.listdir(path):
        if name.endswith(f'_{old_pid}.db'):
            new_name = name.replace(f'_{old_pid}.db', f'_{os.getpid()}.db')
            os.rename(os.path.join(path, name), os.path.join(path, new_name))
    if start == 'django':
        import django
        django.setup()                # the app's ready() connects the metrics: the real start path
    from prometheus_client import generate_latest
    from user_tasks.metrics import multiprocess, prometheus
    prometheus.COMPLETED.labels('t', 'q', 'succeeded').inc()
    body = generate_latest(multiprocess.registry()).decode()
    print(json.dumps({'body': body, 'files': sorted(name for name in os.listdir(path) if name.endswith('.db'))}))
''')


def _restart(tmp_path, start):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE='tests.settings')
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    before = subprocess.run([sys.executable, '-c', BEFORE_RESTART], env=env, capture_output=True, text=True,
                            timeout=60, cwd=cwd)
    assert before.returncode == 0, before.stderr
    after = subprocess.run([sys.executable, '-c', AFTER_RESTART, before.stdout.strip(), start], env=env,
                           capture_output=True, text=True, timeout=60, cwd=cwd)
    assert after.returncode == 0, after.stderr
    return json.loads(after.stdout)


def test_a_restart_with_reused_pids_starts_from_zero(tmp_path):
    result = _restart(tmp_path, start='django')
    body = result['body']
    # No phantom task in progress, and today's counter holds only today's completion.
    assert 'user_tasks_in_progress{queue="q",task="t"} 1.0' not in body
    assert sample(body, 'user_tasks_completed_total{outcome="succeeded",queue="q",task="t"}') == 1
    assert (tmp_path / '.user_tasks.boot').read_text() == multiprocess_boot_id()


def test_without_the_boot_check_the_old_files_are_reopened(tmp_path):
    """The same restart with no start check: what the check prevents (so the test above can fail)."""
    body = _restart(tmp_path, start='bare')['body']
    assert sample(body, 'user_tasks_in_progress{queue="q",task="t"}') == 1
    assert sample(body, 'user_tasks_completed_total{outcome="succeeded",queue="q",task="t"}') == 8


def test_processes_of_the_same_boot_keep_each_others_files(tmp_path):
    from user_tasks.metrics import multiprocess  # pylint: disable=import-outside-toplevel
    (tmp_path / 'counter_999999.db').write_bytes(b'')
    assert multiprocess.claim(str(tmp_path), current='boot-a') == 1   # a new boot: emptied
    (tmp_path / 'counter_999998.db').write_bytes(b'')
    assert multiprocess.claim(str(tmp_path), current='boot-a') == 0   # same boot: kept
    assert (tmp_path / 'counter_999998.db').exists()


def test_boot_id_changes_with_pid_one():
    """The id holds the kernel's boot id and pid 1's start time (a new container has a new pid 1)."""
    boot = multiprocess_boot_id()
    kernel, _, started = boot.partition(':')
    with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as stream:
        assert kernel == stream.read().strip()
    with open('/proc/1/stat', encoding='ascii') as stream:
        assert started == stream.read().rsplit(')', 1)[1].split()[19]


def multiprocess_boot_id():
    from user_tasks.metrics import multiprocess  # pylint: disable=import-outside-toplevel
    return multiprocess.boot_id()

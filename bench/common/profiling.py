"""
Where the time of a task goes: pyinstrument sessions of a worker child and a publisher, sorted into buckets.

A sampling profiler (pyinstrument) rather than cProfile: the hot path is many small Python
calls (the ORM, Celery's tracer), which cProfile's per-call cost would inflate.  Each sample's
stack is put in the first bucket, in ``BUCKETS`` order, that one of its frames belongs to,
so "commit" means time inside a COMMIT (or an autocommit statement's round trip), not the
ORM code around it.

The worker side: with ``USER_TASKS_BENCH_PROFILE_DIR`` set, ``bench.common.settings`` adds
this module to ``CELERY_IMPORTS``; every pool child then profiles itself from
``worker_process_init`` and writes its session (JSON) into that directory at
``worker_process_shutdown``.
"""
import os

# (bucket, predicate on one frame: function name, file path).  A sample goes to the bucket of
# its innermost frame that any predicate accepts (predicates tried in this order), so a
# decorator high in the stack (a span around a publish) does not claim the work below it.
BUCKETS = (
    ('idle (waiting for work)', lambda f, p: (f in ('_recv', 'recv', 'poll', 'select', '_poll', 'wait', 'sleep',
                                                    '_wait_for_tstate_lock')
                                              and ('billiard' in p or 'selectors' in p or 'threading' in p
                                                   or 'kombu/asynchronous' in p))),
    ('connection setup', lambda f, p: (f in ('connect', 'get_new_connection', 'init_connection_state',
                                             'ensure_timezone', '_configure_timezone', '_configure_role',
                                             'get_connection_params')
                                       and ('django/db/backends' in p or 'psycopg' in p or 'pymysql' in p))),
    ('connection close', lambda f, p: f in ('close', '_close') and ('django/db/backends' in p or 'psycopg' in p)),
    ('commit / statement round trip', lambda f, p: (
        (f in ('_execute', 'execute', 'executemany', '_executemany') and 'django/db/backends' in p)
        or (f in ('commit', '_commit', 'set_autocommit', '_set_autocommit') and 'django/db/backends' in p))),
    ('telemetry (metrics, spans)', lambda f, p: ('user_tasks/metrics' in p or 'opentelemetry' in p
                                                 or 'prometheus_client' in p)),
    ('Django ORM (building, compiling, rows)', lambda f, p: 'django/' in p),
    ('user_tasks receivers and transitions', lambda f, p: '/user_tasks/' in p and 'site-packages' not in p),
    ('broker client (kombu, redis)', lambda f, p: 'kombu' in p or '/redis/' in p or '/amqp/' in p),
    ('Celery (tracer, pool, message)', lambda f, p: 'celery' in p or 'billiard' in p),
)
OTHER = 'other'


def _frame(identifier):
    parts = identifier.split('\x00')
    return parts[0], parts[1] if len(parts) > 1 else ''


def _bucket(stack):
    """The bucket of one sample: that of its innermost frame some bucket accepts."""
    for identifier in reversed(stack):
        function, path = _frame(identifier)
        for name, matches in BUCKETS:
            if matches(function, path):
                return name
    return OTHER


def breakdown(sessions):
    """{bucket: seconds} and the busy total over pyinstrument sessions (idle excluded from the total)."""
    totals = {}
    for session in sessions:
        for stack, seconds in session.frame_records:
            bucket = _bucket(stack)
            totals[bucket] = totals.get(bucket, 0.0) + seconds
    busy = sum(seconds for bucket, seconds in totals.items() if not bucket.startswith('idle'))
    shares = {bucket: round(100 * seconds / busy, 1) for bucket, seconds in totals.items()
              if busy and not bucket.startswith('idle')}
    return {'busy_seconds': round(busy, 3), 'percent': dict(sorted(shares.items(), key=lambda kv: -kv[1]))}


def _profile_child():
    from celery.signals import worker_process_init, worker_process_shutdown
    directory = os.environ['USER_TASKS_BENCH_PROFILE_DIR']
    state = {}

    def start(**kwargs):
        from pyinstrument import Profiler
        state['profiler'] = Profiler(interval=0.0005)
        state['profiler'].start()

    def stop(**kwargs):
        profiler = state.pop('profiler', None)
        if profiler is not None:
            session = profiler.stop()
            session.save(os.path.join(directory, f'child-{os.getpid()}.pyisession'))

    worker_process_init.connect(start, weak=False)
    worker_process_shutdown.connect(stop, weak=False)


if os.environ.get('USER_TASKS_BENCH_PROFILE_DIR'):
    _profile_child()

"""
Upgrade from upstream django-user-tasks 3.4.4 and 4.0.0 on PostgreSQL and MariaDB.

For each (release, database): upstream, installed from PyPI in a throw-away venv,
migrates a fresh database and writes rows through its own models; then our code
migrates the same database.  We check that every row survived, that our counters and
transitions work on the old rows, that the migration state is clean, and that the
schema our 0001-0005 build matches the one upstream built.
"""
import json
import os
import time
from types import SimpleNamespace

import pytest

from .conftest import (
    REPO,
    SCRIPTS,
    UPSTREAM,
    applied_migrations,
    django_env,
    drop_database,
    recreate_database,
    run,
    schema_diff,
    schema_snapshot,
    write_settings,
)

pytestmark = pytest.mark.timeout(1800)

KINDS = ('postgres', 'mariadb')
SHORT = {'postgres': 'pg', 'mariadb': 'maria'}
DJANGO42 = 'Django>=4.2,<4.3'
# (upstream release, database, Django line our code runs with: None = the project venv's).
# The project venv does the upgrade as the brief of this suite says; a site still on
# Django 4.2 upgrading from 3.4.4 is covered too.
# The last element stops upstream at a migration: at 0004, the uuid columns are still
# char(32) on MariaDB, as on sites that ran releases before upstream's 0005, so our 0005
# really converts them (with rows in them).
CASES = [(version, kind, None, None) for version in UPSTREAM for kind in KINDS]
CASES += [('3.4.4', kind, DJANGO42, None) for kind in KINDS]
CASES += [('3.4.4', 'mariadb', our_django, '0004_url_textfield') for our_django in (None, DJANGO42)]
# Upstream's migrations, which ours keep by name, then ours (later ones may follow).
UPSTREAM_MIGRATIONS = [
    '0001_initial', '0002_artifact_file_storage', '0003_url_max_length', '0004_url_textfield',
    '0005_mariadb_uuid_conversion',
]
OUR_MIGRATIONS = UPSTREAM_MIGRATIONS + [
    '0006_widen_counters_and_lifecycle_timestamps', '0007_indexes_for_lists_and_purge',
    '0008_oep3_concurrency_key_arguments_retried_as', '0009_translatable_states', '0010_periodic_job_runs',
]
BIG = 2 ** 31 - 1
# Hosts made with startproject default to BigAutoField: our tables must not follow it.
HOST_AUTO_FIELD = 'django.db.models.BigAutoField'


def _dbname(*parts):
    return '_'.join(['ut_upgrade', *parts, str(os.getpid())])


@pytest.fixture(scope='session')
def fresh_schema(tmp_path_factory, ours_python):
    """``fresh_schema(kind, django_req, target)``: the schema our migrations build on an empty DB."""
    cache = {}

    def get(kind, django_req, target=None):
        key = (kind, django_req, target)
        if key not in cache:
            python = ours_python(django_req)
            tag = 'dj' + ''.join(django_req.split(',')[0].split('>=')[1].split('.'))
            dbname = _dbname('fresh', tag, SHORT[kind], (target or 'all')[:4])
            work = tmp_path_factory.mktemp(f'fresh-{kind}-{tag}')
            recreate_database(kind, dbname)
            try:
                settings = write_settings(work, kind, dbname, auto_field=HOST_AUTO_FIELD)
                args = ['user_tasks', target] if target else []
                run([python, '-m', 'django', 'migrate', '--noinput', *args], env=django_env(settings, ours=True),
                    cwd=work)
                cache[key] = schema_snapshot(kind, dbname)
            finally:
                drop_database(kind, dbname)
        return cache[key]
    return get


def _case_id(case):
    version, kind, our_django, stop = case
    return (f'{version}' + (f'@{stop[:4]}' if stop else '') + f'-{kind}'
            + (f'-ours-django{our_django.split(",")[0][8:]}' if our_django else ''))


@pytest.fixture(scope='module', params=CASES, ids=_case_id)
def upgraded(request, tmp_path_factory, upstream_python, ours_python, require_service):
    version, kind, our_django, stop = request.param
    require_service(kind)
    timings = {}
    started = time.monotonic()
    upstream = upstream_python(version)
    ours = ours_python(our_django)
    timings['venvs'] = time.monotonic() - started

    dbname = _dbname(version.replace('.', ''), (stop or 'all')[:4], SHORT[kind], 'dj42' if our_django else 'p')
    work = tmp_path_factory.mktemp(f'upgrade-{version}-{kind}')
    recreate_database(kind, dbname)
    request.addfinalizer(lambda: drop_database(kind, dbname))

    # Upstream builds the database and writes through its own models.
    step = time.monotonic()
    upstream_env = django_env(write_settings(work / 'upstream', kind, dbname), ours=False)
    if stop:
        run([upstream, '-m', 'django', 'migrate', '--noinput', 'user_tasks', stop], env=upstream_env, cwd=work)
        for app in ('auth', 'contenttypes'):  # the rest of them, without moving user_tasks on
            run([upstream, '-m', 'django', 'migrate', '--noinput', app], env=upstream_env, cwd=work)
    else:
        run([upstream, '-m', 'django', 'migrate', '--noinput'], env=upstream_env, cwd=work)
    run([upstream, SCRIPTS / 'upstream_write.py', work / 'written.json'], env=upstream_env, cwd=work)
    written = json.loads((work / 'written.json').read_text(encoding='utf-8'))
    upstream_migrations = applied_migrations(kind, dbname)
    upstream_schema = schema_snapshot(kind, dbname)
    timings['upstream'] = time.monotonic() - step

    # Our code takes over the same database.
    step = time.monotonic()
    ours_env = django_env(write_settings(work / 'ours', kind, dbname, auto_field=HOST_AUTO_FIELD), ours=True)
    migrate = run([ours, '-m', 'django', 'migrate', '--noinput'], env=ours_env, cwd=work)
    showmigrations = run([ours, '-m', 'django', 'showmigrations', 'user_tasks'], env=ours_env, cwd=work)
    makemigrations = run([ours, '-m', 'django', 'makemigrations', '--check', '--dry-run'],
                         env=ours_env, cwd=work, check=False)
    upgraded_schema = schema_snapshot(kind, dbname)
    timings['our migrate'] = time.monotonic() - step
    run([ours, SCRIPTS / 'ours_check.py', work / 'checked.json'], env=ours_env, cwd=work)
    checked = json.loads((work / 'checked.json').read_text(encoding='utf-8'))
    timings['ours total'] = time.monotonic() - step
    print(f'{_case_id(request.param)}: ' + ', '.join(f'{k} {v:.1f}s' for k, v in timings.items()))

    return SimpleNamespace(
        version=version, stop=stop, kind=kind, dbname=dbname, upstream=upstream, ours=ours, our_django=our_django,
        written=written,
        upstream_migrations=upstream_migrations, upstream_schema=upstream_schema, migrate=migrate,
        showmigrations=showmigrations.stdout, makemigrations=makemigrations, upgraded_schema=upgraded_schema,
        checked=checked, timings=timings,
    )


def test_upstream_really_wrote_the_data(upgraded):
    info = upgraded.written['upstream']
    assert info['version'] == upgraded.version
    assert str(upgraded.upstream.parent.parent) in info['file'], info['file']
    assert upgraded.upstream_migrations[0] == '0001_initial'
    assert upgraded.upstream_migrations[-1] == (upgraded.stop or UPSTREAM_MIGRATIONS[-1])
    assert set(upgraded.upstream_migrations) <= set(UPSTREAM_MIGRATIONS), upgraded.upstream_migrations
    assert len(upgraded.written['statuses']) == 13
    assert len(upgraded.written['artifacts']) == 5
    # The check script ran our code, not the upstream copy.
    assert upgraded.checked['ours']['file'].startswith(str(REPO / 'user_tasks')), upgraded.checked['ours']


def test_every_row_intact(upgraded):
    written, after = upgraded.written, upgraded.checked['before']
    for table in ('statuses', 'artifacts'):
        assert set(after[table]) == set(written[table]), f'{table}: uuids differ'
        for uuid, row in written[table].items():
            assert after[table][uuid] == row, f'{table} {uuid} changed'
    parents = {v['name']: v['parent'] for v in after['statuses'].values()}
    by_name = {v['name']: k for k, v in after['statuses'].items()}
    assert parents['export part 2'] == by_name['course export chain']
    assert parents['library part'] == by_name['library group']
    # The new lifecycle columns are empty on old rows (they fall back to ``modified``).
    assert upgraded.checked['new_columns_before'] == {}
    assert upgraded.checked['oep3_columns_before'] == {}


def test_upgraded_rows_take_part_in_oep3(upgraded):
    """Keys of old rows are empty, so they never clash; a keyed row next to them is unique until it ends."""
    assert upgraded.checked['steps']['oep3'] == {'second_keyed_refused': True, 'key_after_fail': None,
                                                'keyed_again_after_end': True}


def test_counters_hold_2_31_minus_1(upgraded):
    steps = upgraded.checked['steps']
    assert steps['big_counters'] == [BIG - 1, BIG, BIG]
    assert steps['big_after_increment'] == [BIG, BIG]
    assert steps['new_row'] == [BIG, 14]


def test_our_transitions_on_upgraded_rows(upgraded):
    steps = upgraded.checked['steps']
    assert steps['uuid_lookup']
    assert steps['artifact_lookup'] == ['BASE_URL', 'BrokenLinks', 'Output']
    assert steps['child_after_increment'] == ['In Progress', 2, 2767]
    assert steps['chain_after_increment'] == ['In Progress', 30002, 32767]
    assert steps['child_after_succeed'] == ['Succeeded', 2767, 2767, True]
    # Both children of the chain have now succeeded, so the chain has too.
    assert steps['chain_after_succeed'][0] == 'Succeeded'
    assert steps['pending_started'] == 'In Progress'
    assert steps['pending_failed'] == ['Failed', ['upgraded failure']]


def test_all_our_migrations_applied(upgraded):
    lines = [line.strip() for line in upgraded.showmigrations.splitlines()]
    for name in OUR_MIGRATIONS:
        assert f'[X] {name}' in lines, upgraded.showmigrations
    assert not any(line.startswith('[ ]') for line in lines), upgraded.showmigrations


def test_no_missing_migrations(upgraded):
    result = upgraded.makemigrations
    assert result.returncode == 0, f'makemigrations --check:\n{result.stdout}\n{result.stderr}'
    assert 'No changes detected' in result.stdout


def test_our_migrations_build_upstreams_schema(upgraded, fresh_schema):
    """Ours up to upstream's last migration, same Django line, vs what upstream built."""
    target = upgraded.upstream_migrations[-1]
    ours = fresh_schema(upgraded.kind, UPSTREAM[upgraded.version], target)
    differences = schema_diff(upgraded.upstream_schema, ours, f'upstream {upgraded.version}', f'ours@{target}')
    assert not differences, '\n'.join(differences)


def test_upgraded_schema_equals_fresh_install(upgraded, fresh_schema):
    """An upgraded database ends with the schema a fresh install of ours gets."""
    import django
    ours = fresh_schema(upgraded.kind, upgraded.our_django or f'Django>={django.VERSION[0]}.{django.VERSION[1]}')
    differences = schema_diff(ours, upgraded.upgraded_schema, 'fresh ours', f'upgraded from {upgraded.version}')
    assert not differences, '\n'.join(differences)


def test_mariadb_uuid_columns_end_native(upgraded):
    """On MariaDB (10.7+) both uuid columns end in the native type, whatever they started as."""
    if upgraded.kind != 'mariadb':
        pytest.skip('MariaDB only')
    for table in ('user_tasks_usertaskstatus', 'user_tasks_usertaskartifact'):
        before = upgraded.upstream_schema['columns'][f'{table}.uuid']['column_type']
        assert before == ('char(32)' if upgraded.stop else 'uuid'), before
        assert upgraded.upgraded_schema['columns'][f'{table}.uuid']['column_type'] == 'uuid'

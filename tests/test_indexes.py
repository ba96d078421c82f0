"""The indexes of migration 0007 serve the list, admin and purge queries (checked with EXPLAIN)."""
from datetime import datetime, timezone

import pytest
from django.db import connection
from django.db.models import Q

from tests.rest_helpers import create_status
from user_tasks.models import UserTaskArtifact, UserTaskStatus

pytest_plugins = ['tests.rest_fixtures']
pytestmark = pytest.mark.django_db

INDEXES = {
    'user_tasks_usertaskstatus': {'usertask_user_created_idx', 'usertask_created_idx', 'usertask_state_finished_idx'},
    'user_tasks_usertaskartifact': {'usertaskartifact_created_idx'},
}


def _plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == 'sqlite':
            cursor.execute(f'EXPLAIN QUERY PLAN {sql}', params)
            return ' | '.join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute(f'EXPLAIN {sql}', params)
        return ' | '.join(' '.join(map(str, row)) for row in cursor.fetchall())


def test_indexes_exist():
    with connection.cursor() as cursor:
        for table, names in INDEXES.items():
            constraints = connection.introspection.get_constraints(cursor, table)
            assert names <= set(constraints), table


@pytest.mark.skipif(connection.vendor != 'sqlite', reason='plans are checked on SQLite; see bench/ for others')
class TestPlans:

    def test_users_list_newest_first_uses_user_created_index_without_sorting(self, owner):
        create_status(owner)
        plan = _plan(UserTaskStatus.objects.filter(user=owner).order_by('-created', '-id'))
        assert 'usertask_user_created_idx' in plan and 'TEMP B-TREE' not in plan, plan

    def test_everyones_list_uses_created_index_without_sorting(self):
        plan = _plan(UserTaskStatus.objects.order_by('-created', '-id')[:100])
        assert 'usertask_created_idx' in plan and 'TEMP B-TREE' not in plan, plan
        plan = _plan(UserTaskArtifact.objects.select_related('status').order_by('-created', '-id')[:100])
        assert 'usertaskartifact_created_idx' in plan and 'TEMP B-TREE' not in plan, plan

    def test_state_lookups_use_state_finished_index(self):
        old = datetime(2020, 1, 1, tzinfo=timezone.utc)
        plan = _plan(UserTaskStatus.objects.filter(Q(state='Succeeded') & Q(finished__lt=old)))
        assert 'usertask_state_finished_idx' in plan, plan
        plan = _plan(UserTaskStatus.objects.filter(state='In Progress'))
        assert 'usertask_state_finished_idx' in plan, plan

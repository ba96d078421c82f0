"""
Run with our code on a database upstream built and we migrated: dump the rows as they
read now, then exercise our model on the upgraded rows.  Usage:
python ours_check.py OUTPUT.json
"""
import json
import sys

import django

django.setup()

from dump import dump  # noqa: E402

import user_tasks  # noqa: E402
from user_tasks.models import UserTaskArtifact, UserTaskStatus  # noqa: E402

BIG = 2 ** 31 - 1
result = {'ours': {'file': user_tasks.__file__, 'version': user_tasks.__version__, 'django': django.get_version()}}
result['before'] = dump()
result['new_columns_before'] = {
    str(uuid): [started, heartbeat, finished]
    for uuid, started, heartbeat, finished in UserTaskStatus.objects.values_list('uuid', 'started', 'heartbeat',
                                                                                 'finished')
    if started or heartbeat or finished
}
result['oep3_columns_before'] = {
    str(uuid): [key, arguments, retried_as]
    for uuid, key, arguments, retried_as in UserTaskStatus.objects.values_list('uuid', 'concurrency_key', 'arguments',
                                                                                'retried_as')
    if key is not None or arguments is not None or retried_as is not None
}
steps = {}

# Lookups by uuid still work (MariaDB's char(32) -> native uuid conversion matters here).
custom = UserTaskStatus.objects.get(uuid=UserTaskStatus.objects.get(task_id__startswith='task-custom').uuid)
steps['uuid_lookup'] = str(custom.uuid)
steps['artifact_lookup'] = sorted(
    a.name for a in UserTaskArtifact.objects.filter(status__uuid=custom.uuid))

# Counters are now 32-bit: write 2**31-1 and read it back through a fresh query.
custom.total_steps = BIG
custom.completed_steps = BIG - 1
custom.attempts = BIG
custom.save()
fresh = UserTaskStatus.objects.get(pk=custom.pk)
steps['big_counters'] = [fresh.completed_steps, fresh.total_steps, fresh.attempts]
fresh.increment_completed_steps()
fresh = UserTaskStatus.objects.get(pk=custom.pk)
steps['big_after_increment'] = [fresh.completed_steps, fresh.total_steps]

# Our transitions on an upgraded child of an upgraded chain.
child = UserTaskStatus.objects.get(task_id='chain-1-b')
child.increment_completed_steps()
child_row = UserTaskStatus.objects.get(pk=child.pk)
chain_row = UserTaskStatus.objects.get(task_id='chain-1')
steps['child_after_increment'] = [child_row.state, child_row.completed_steps, child_row.total_steps]
steps['chain_after_increment'] = [chain_row.state, chain_row.completed_steps, chain_row.total_steps]
child = UserTaskStatus.objects.get(pk=child.pk)
child.succeed()
child_row = UserTaskStatus.objects.get(pk=child.pk)
chain_row = UserTaskStatus.objects.get(task_id='chain-1')
steps['child_after_succeed'] = [child_row.state, child_row.completed_steps, child_row.total_steps,
                                child_row.finished is not None]
steps['chain_after_succeed'] = [chain_row.state, chain_row.completed_steps, chain_row.total_steps]

# Start, retry and fail an upgraded Pending row.
pending = UserTaskStatus.objects.get(task_id='task-pending')
pending.start()
steps['pending_started'] = UserTaskStatus.objects.get(pk=pending.pk).state
pending.fail('upgraded failure')
pending_row = UserTaskStatus.objects.get(pk=pending.pk)
steps['pending_failed'] = [pending_row.state,
                           list(pending_row.artifacts.filter(name='Error').values_list('text', flat=True))]

# A brand new row next to the old ones.
new = UserTaskStatus.objects.create(user=custom.user, task_id='after-upgrade', task_class='x.y', name='new',
                                    total_steps=BIG)
steps['new_row'] = [UserTaskStatus.objects.get(uuid=new.uuid).total_steps, UserTaskStatus.objects.count()]

# OEP-3 on the upgraded table (migration 0008): one active row per (user, class, key).
from django.db import IntegrityError, transaction  # noqa: E402

keyed = UserTaskStatus.objects.create(user=custom.user, task_id='keyed-1', task_class='x.keyed', name='k',
                                      total_steps=1, concurrency_key='course-1')
try:
    with transaction.atomic():
        UserTaskStatus.objects.create(user=custom.user, task_id='keyed-2', task_class='x.keyed', name='k',
                                      total_steps=1, concurrency_key='course-1')
    refused = False
except IntegrityError:
    refused = True
keyed.fail('ended')
again = UserTaskStatus.objects.create(user=custom.user, task_id='keyed-3', task_class='x.keyed', name='k',
                                      total_steps=1, concurrency_key='course-1')
steps['oep3'] = {'second_keyed_refused': refused,
                 'key_after_fail': UserTaskStatus.objects.get(pk=keyed.pk).concurrency_key,
                 'keyed_again_after_end': again.pk is not None}
result['steps'] = steps

with open(sys.argv[1], 'w', encoding='utf-8') as handle:
    json.dump(result, handle, indent=1, sort_keys=True, default=str)

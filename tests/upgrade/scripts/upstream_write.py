"""
Run by an upstream django-user-tasks virtualenv (a black box): write rows through its
models and print them as JSON.  Usage: python upstream_write.py OUTPUT.json
"""
import importlib.metadata
import json
import sys
from datetime import timedelta

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.utils import timezone  # noqa: E402
from dump import dump  # noqa: E402  (the shared dumper next to this script)

import user_tasks  # noqa: E402
from user_tasks.models import UserTaskArtifact, UserTaskStatus  # noqa: E402

User = get_user_model()
user = User.objects.create_user('upgrader', 'upgrader@example.com', 'x')
other = User.objects.create_user('someone_else', 'else@example.com', 'x')


def status(name, state, completed=0, total=1, attempts=1, **extra):
    return UserTaskStatus.objects.create(
        user=extra.pop('owner', user), task_id=extra.pop('task_id', f'task-{name}'),
        task_class=extra.pop('task_class', 'cms.djangoapps.contentstore.tasks.import_olx'),
        name=name, state=state, completed_steps=completed, total_steps=total, attempts=attempts, **extra)


# One row per upstream state, plus a custom in-progress text.
status('pending', UserTaskStatus.PENDING, 0, 3)
status('in progress', UserTaskStatus.IN_PROGRESS, 1, 3)
status('succeeded', UserTaskStatus.SUCCEEDED, 30000, 30000)
failed = status('failed', UserTaskStatus.FAILED, 2, 5, attempts=3)
status('canceled', UserTaskStatus.CANCELED, 0, 9, owner=other)
status('retrying', UserTaskStatus.RETRYING, 0, 4, attempts=2)
custom = status('custom state: Ünïcødé ✓', 'Importing course: 3 of 7 units', 30000, 32000)

# A chain container with two children (one done, one running) at the large end of smallint.
chain = status('course export chain', UserTaskStatus.IN_PROGRESS, 30001, 32767,
               is_container=True, task_class='celery.chain', task_id='chain-1')
status('export part 1', UserTaskStatus.SUCCEEDED, 30000, 30000, parent=chain, task_id='chain-1-a')
status('export part 2', UserTaskStatus.IN_PROGRESS, 1, 2767, parent=chain, task_id='chain-1-b')
group = status('library group', UserTaskStatus.PENDING, 0, 2, is_container=True, task_class='celery.group',
               task_id='group-1')
status('library part', UserTaskStatus.PENDING, 0, 2, parent=group, task_id='group-1-a')

# Artifacts: text, a long url, a file name (no file needs to exist for the name to be stored).
UserTaskArtifact.objects.create(status=failed, name='Error', text='{"raw_error_msg": "Boom: ✗ 🚀"}')
UserTaskArtifact.objects.create(status=custom, name='BASE_URL',
                                url='https://studio.example.com/export/' + 'x' * 600 + '?a=1&b=2')
artifact = UserTaskArtifact(status=custom, name='Output')
artifact.file.name = 'user_tasks/2024/01/02/course.abc123.tar.gz'
artifact.save()
UserTaskArtifact.objects.create(status=custom, name='BrokenLinks', text='a' * 5000)
UserTaskArtifact.objects.create(status=chain, text='short text')

# A row last modified long ago, as purge/recovery see old data.
old = status('old', UserTaskStatus.SUCCEEDED, 1, 1)
UserTaskStatus.objects.filter(pk=old.pk).update(
    created=timezone.now() - timedelta(days=400), modified=timezone.now() - timedelta(days=399))

result = dump()
result['upstream'] = {
    'version': importlib.metadata.version('django-user-tasks'),
    'file': user_tasks.__file__,
    'django': django.get_version(),
}
with open(sys.argv[1], 'w', encoding='utf-8') as handle:
    json.dump(result, handle, indent=1, sort_keys=True)

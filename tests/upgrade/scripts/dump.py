"""Dump every user_tasks row as plain JSON; shared by the upstream and our scripts."""
from user_tasks.models import UserTaskArtifact, UserTaskStatus


def _time(value):
    return value.isoformat() if value else None


def dump():
    statuses = {}
    for row in UserTaskStatus.objects.select_related('user', 'parent').order_by('pk'):
        statuses[str(row.uuid)] = {
            'id': row.pk, 'user': row.user.username, 'task_id': row.task_id,
            'parent': str(row.parent.uuid) if row.parent_id else None, 'is_container': row.is_container,
            'task_class': row.task_class, 'name': row.name, 'state': row.state,
            'completed_steps': row.completed_steps, 'total_steps': row.total_steps, 'attempts': row.attempts,
            'created': _time(row.created), 'modified': _time(row.modified),
        }
    artifacts = {}
    for row in UserTaskArtifact.objects.select_related('status').order_by('pk'):
        artifacts[str(row.uuid)] = {
            'id': row.pk, 'status': str(row.status.uuid), 'name': row.name,
            'file': row.file.name if row.file else None, 'url': row.url, 'text': row.text,
            'created': _time(row.created), 'modified': _time(row.modified),
        }
    return {'statuses': statuses, 'artifacts': artifacts}

"""``manage.py reap_stale_user_tasks``: the periodic reaper, for sites that run no Celery beat."""
from django.core.management.base import BaseCommand

from user_tasks.recovery import reap


class Command(BaseCommand):
    """See ``help``."""

    help = 'Fail user tasks whose worker died, and tasks whose message never arrived.'

    def handle(self, *args, **options):
        counts = reap()
        self.stdout.write(', '.join(f'{reason}: {count}' for reason, count in counts.items()))

"""``manage.py reap_stale_user_tasks``: the periodic reaper, for sites that run no Celery beat."""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from user_tasks.recovery import reap


class Command(BaseCommand):
    """See ``help``."""

    help = ('Fail user tasks whose worker died, and tasks whose message never arrived; end containers '
            'whose tasks have all ended.')

    def handle(self, *args, **options):
        try:
            counts = reap()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(', '.join(f'{reason}: {count}' for reason, count in counts.items()))

"""``manage.py purge_old_user_tasks``: the periodic purge, for sites that run no Celery beat."""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from user_tasks.retention import purge


class Command(BaseCommand):
    """See ``help``."""

    help = 'Delete finished user tasks (and their artifact files) older than their maximum age.'

    def handle(self, *args, **options):
        try:
            counts = purge()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Purged {counts['status']} statuses, {counts['artifact']} artifacts, {counts['file']} files")

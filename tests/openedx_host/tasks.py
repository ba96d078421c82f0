"""A user task of the host, in the shape Studio's tasks have."""
from celery import shared_task

from user_tasks.models import UserTaskArtifact
from user_tasks.tasks import UserTask


class HostTask(UserTask):
    """Two steps, named after its label."""

    @staticmethod
    def calculate_total_steps(arguments_dict):
        return 2

    @classmethod
    def generate_name(cls, arguments_dict):
        return f"Host task for {arguments_dict['label']}"


@shared_task(base=HostTask, bind=True)
def host_task(self, user_id, label):
    """Report progress in two steps and leave an ``Output`` artifact."""
    self.status.set_state('Working')
    self.status.increment_completed_steps()
    UserTaskArtifact.objects.create(status=self.status, name='Output', text=f'{label} done for user {user_id}')
    self.status.increment_completed_steps()

"""A sample user task: a two-step "course export" that leaves a text artifact."""
import time

from celery import shared_task

from user_tasks.models import UserTaskArtifact
from user_tasks.tasks import UserTask


class SampleExportTask(UserTask):
    """Names the task after the course and declares its two steps."""

    @staticmethod
    def calculate_total_steps(arguments_dict):
        return 2

    @classmethod
    def generate_name(cls, arguments_dict):
        return f"Export of {arguments_dict['course_key_string']}"


@shared_task(base=SampleExportTask, bind=True)
def sample_export(self, user_id, course_key_string):
    """Pretend to export a course, reporting progress on the way."""
    self.status.set_state('Exporting')
    time.sleep(0.2)
    self.status.increment_completed_steps()
    self.status.set_state('Compressing')
    UserTaskArtifact.objects.create(
        status=self.status,
        name='Output',
        text=f'Exported {course_key_string} for user {user_id}.',
    )
    self.status.increment_completed_steps()

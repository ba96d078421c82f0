"""Tasks that only the demo starts: a long job to watch and to cancel, and a small step of a chain."""
import time

from celery import shared_task

from user_tasks.tasks import UserTask


class LongJobTask(UserTask):
    """One step per item; named after its size."""

    @staticmethod
    def calculate_total_steps(arguments_dict):
        return arguments_dict['items']

    @classmethod
    def generate_name(cls, arguments_dict):
        return f'Long job of {arguments_dict["items"]} items'


@shared_task(base=LongJobTask, bind=True)
def long_job(self, user_id, items=120, delay=0.5):
    """Process ``items`` slowly, showing a stage text; a cancel stops it at its next step."""
    for item in range(1, items + 1):
        self.status.set_state(f'Processing item {item} of {items}')
        time.sleep(delay)
        self.status.increment_completed_steps()


class ChainStepTask(UserTask):
    """A step of the demo chain, named after its label."""

    @staticmethod
    def calculate_total_steps(arguments_dict):
        return 2

    @classmethod
    def generate_name(cls, arguments_dict):
        return f'Chain step: {arguments_dict["label"]}'


@shared_task(base=ChainStepTask, bind=True)
def chain_step(self, user_id, label, **kwargs):
    """Two short steps with a stage text each (the chain shows them too)."""
    for stage in ('Preparing', 'Writing'):
        self.status.set_state(f'{stage} {label}')
        time.sleep(0.3)
        self.status.increment_completed_steps()

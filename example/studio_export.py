"""
A course export task written the way Studio writes ``export_olx``.

Studio's ``cms/djangoapps/contentstore/tasks.py`` subclasses ``UserTask`` to name the
task ``Export of <course key>`` and declare two steps (Exporting, Compressing), moves
through ``set_state('Exporting')`` and ``set_state('Compressing')`` (message ids, so every
reader sees them in their language: ``user_tasks.stages`` ships them translated), saves the tarball as
an ``Output`` artifact file, and on error calls ``status.fail({'raw_error_msg': ...})``,
which the export page reads back as an object.  The "course" here is a small generated
OLX tree; a key that is not ``course-v1:ORG+COURSE+RUN`` cannot be exported.

``USER_TASKS_EXAMPLE_EXPORT_GATE`` (environment, a folder) holds the task before it
leaves each stage until a file ``<stage>`` appears there; tests use it to look at every
stage.  Unset, the task only pauses briefly so the demo can show progress.
"""
import io
import logging
import os
import re
import tarfile
import time

from celery import shared_task
from django.core.files.base import ContentFile

from user_tasks import stages
from user_tasks.models import UserTaskArtifact, UserTaskStatus
from user_tasks.tasks import UserTask

LOG = logging.getLogger(__name__)

COURSE_KEY = re.compile(r'^course-v1:(?P<org>[\w.-]+)\+(?P<course>[\w.-]+)\+(?P<run>[\w.-]+)$')
GATE_ENV = 'USER_TASKS_EXAMPLE_EXPORT_GATE'
GATE_TIMEOUT = 60
DEMO_PAUSE = 0.3


class CourseExportTask(UserTask):
    """
    Base class for course export tasks, as Studio's, with the three OEP-3 hooks.

    - one export per course at a time: a second click (or a reload) while an export of the
      course is active gets that export back instead of starting another;
    - at most three active exports per user (``TooManyActiveTasks`` past that: the view
      answers 429);
    - retryable: a failed or canceled export can be tried again with the same arguments.
    """

    max_active_per_user = 3
    retryable = True

    @classmethod
    def concurrency_key(cls, arguments_dict):
        """Identical exports are exports of the same course."""
        return arguments_dict['course_key_string']

    @staticmethod
    def calculate_total_steps(arguments_dict):
        """Exporting, then Compressing."""
        return 2

    @classmethod
    def generate_name(cls, arguments_dict):
        """The name the export page looks the task up by."""
        return f'Export of {arguments_dict["course_key_string"]}'


def export_name(course_key_string):
    """The status name of an export of ``course_key_string`` (what the status view filters on)."""
    return CourseExportTask.generate_name({'course_key_string': course_key_string})


@shared_task(base=CourseExportTask, bind=True)
def export_olx(self, user_id, course_key_string, language):
    """Export a course to an OLX tarball stored as the task's ``Output`` artifact."""
    try:
        self.status.set_state(stages.EXPORTING)
        olx = _export_course(course_key_string)
        _hold('exporting')
        self.status.set_state(stages.COMPRESSING)
        self.status.increment_completed_steps()
        tarball = _compress(course_key_string, olx)
        _hold('compressing')
        artifact = UserTaskArtifact(status=self.status, name='Output')
        artifact.file.save(name=_file_name(course_key_string), content=ContentFile(tarball))
        artifact.save()
    except Exception as exception:
        # Studio logs the error and records it for the export page instead of raising.
        LOG.exception('Error exporting course %s', course_key_string)
        if self.status.state != UserTaskStatus.FAILED:
            self.status.fail({'raw_error_msg': str(exception)})


def _export_course(course_key_string):
    """The course's OLX files, {path: text}; stands in for Studio's ``export_course_to_xml``."""
    match = COURSE_KEY.match(course_key_string)
    if match is None:
        raise ValueError(f'Unknown course: {course_key_string}')
    org, course, run = match.group('org', 'course', 'run')
    return {
        'course.xml': f'<course url_name="{run}" org="{org}" course="{course}"/>\n',
        f'course/{run}.xml': f'<course display_name="{course}"><chapter url_name="intro"/></course>\n',
        'chapter/intro.xml': '<chapter display_name="Introduction"/>\n',
    }


def _compress(course_key_string, olx):
    """A gzipped tarball of ``olx`` under one top folder, as Studio builds it."""
    top = _safe(course_key_string)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        for path, text in sorted(olx.items()):
            data = text.encode('utf-8')
            info = tarfile.TarInfo(f'{top}/{path}')
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _safe(course_key_string):
    return re.sub(r'[^\w.-]+', '_', course_key_string)


def _file_name(course_key_string):
    return f'{_safe(course_key_string)}.tar.gz'


def _hold(stage):
    """Wait for the gate file of ``stage`` when a gate folder is set (bounded); else pause briefly."""
    gate = os.environ.get(GATE_ENV)
    if not gate:
        time.sleep(DEMO_PAUSE)
        return
    path = os.path.join(gate, stage)
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f'No {stage} gate within {GATE_TIMEOUT} s')
        time.sleep(0.05)

"""
The Celery side of a user task: ``UserTaskMixin``/``UserTask`` and the periodic jobs.

A task opts in to status tracking by using ``UserTask`` as its base (or mixing
``UserTaskMixin`` into its own base).  Its first argument, or a keyword, is the
``user_id`` of the user who triggered it.  Inside the task, ``self.status`` is its
``UserTaskStatus`` row, through which it reports progress.

Layer: Celery.  Imports the operations (``canvas``, ``recovery``, ``retention``), the
domain, the hub and the leaves; observers wrap a task body through
``lifecycle.around(EXECUTE, ...)``, so nothing here imports ``user_tasks.metrics``.
"""
import inspect
import logging
from contextlib import contextmanager
from functools import lru_cache, partial

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.utils import uuid
from django.db import router

from user_tasks import (
    admission,
    canvas,
    canvas_owners,
    control,
    lifecycle,
    recovery,
    retention,
    status_connection,
    utils,
)
from user_tasks.commit import after_commit, in_transaction
from user_tasks.conf import settings
from user_tasks.models import UserTaskStatus

LOG = logging.getLogger(__name__)


class UserTaskMixin:
    """
    Status tracking for a Celery task triggered by a user.

    Override ``calculate_total_steps`` and ``generate_name`` to give the status row a
    meaningful size and name; both receive the task's arguments as a dict.  The first
    argument of the task function (or the ``user_id`` keyword) names the user.

    Example::

        @shared_task(base=UserTask, bind=True)
        def export_course(self, user_id, course_key, user_task_name=None, **kwargs):
            self.status.set_state('Exporting')
            ...
            self.status.increment_completed_steps()

        export_course.delay(request.user.pk, 'course-v1:edX+Demo+2026')

    OEP-3 (see ``user_tasks.admission``): override ``concurrency_key`` to prevent identical
    concurrent tasks, set ``max_active_per_user`` to cap a user's active tasks of the class,
    and set ``retryable = True`` to let users try a failed or canceled task again.
    """

    #: At most this many tasks of this class active per user (None: no limit);
    #: ``USER_TASKS_MAX_ACTIVE_PER_USER`` overrides it by task name.
    max_active_per_user = None
    #: Keep the call's arguments (JSON) so a Failed or Canceled task can be tried again.
    retryable = False
    #: What ``user_tasks.utils.is_user_task`` looks for (``USER_TASK_MARKER``).
    tracks_user_task_status = True

    def __init_subclass__(cls, **kwargs):
        """Let Celery's argument check accept ``user_task_name`` for functions that cannot take it.

        The container name travels in the message and is stripped before the body runs
        (see ``__call__``), so the publish must not be refused for it.
        """
        super().__init_subclass__(**kwargs)
        header = cls.__dict__.get('__header__')
        if header is None or 'run' not in cls.__dict__ or _accepts_keyword(cls, utils.NAME_KEYWORD):
            return
        check = header.__func__ if isinstance(header, staticmethod) else header

        def check_arguments(*args, **call_kwargs):
            call_kwargs.pop(utils.NAME_KEYWORD, None)
            return check(*args, **call_kwargs)
        cls.__header__ = staticmethod(check_arguments)

    @property
    def status(self):
        """
        The ``UserTaskStatus`` of the running invocation, created if the publisher did not record one.

        Returns:
            UserTaskStatus: the row (cached on the request for the rest of the attempt).

        Raises:
            TypeError: no row exists and the invocation's ``user_id`` is missing or unknown.
        """
        request = self.request
        status = getattr(request, 'user_task_status', None)
        if status is None or status.task_id != request.id:
            query = UserTaskStatus.objects.filter(task_id=request.id)
            # Read where the status is written (the status connection, in a worker): the
            # row was committed before the message was sent, and no other connection is opened.
            status = status_connection.run(UserTaskStatus, lambda alias: query.using(alias).first())
            if status is not None:
                # The model's alias, not the status connection's: rows the body relates to it are
                # written by the body (Django's default router follows the instance's database).
                status._state.db = status_connection.base_alias(UserTaskStatus)  # noqa: SLF001
            if status is None:
                status = canvas.create_status_for_request(self, request)
            request.user_task_status = status
        return status

    @classmethod
    def arguments_as_dict(cls, *args, **kwargs):
        """
        Map the task function's parameter names to the values of one invocation.

        Var-positional values sit under ``args`` and var-keyword values under ``kwargs``;
        defaults are filled in.  Decorated functions are read through ``__wrapped__``.

        Returns:
            dict: parameter name -> value.

        Example::

            # def export_course(self, user_id, course_key, *args, **kwargs)
            export_course.arguments_as_dict(7, 'course-v1:x', 'a', flag=True)
            # {'user_id': 7, 'course_key': 'course-v1:x', 'args': ('a',), 'kwargs': {'flag': True}}
        """
        signature = _run_signature(cls)
        kwargs = _without_unaccepted_name(cls, kwargs)
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            return dict(kwargs, args=args) if args else dict(kwargs)
        bound.apply_defaults()
        arguments = {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                arguments['args'] = value
            elif kind is inspect.Parameter.VAR_KEYWORD:
                arguments['kwargs'] = value
            else:
                arguments[name] = value
        return arguments

    @staticmethod
    def calculate_total_steps(arguments_dict):  # noqa: ARG004  a hook: overrides read the arguments
        """
        The number of steps this invocation will take; 1 unless overridden.

        Arguments:
            arguments_dict (dict): the invocation's arguments (see ``arguments_as_dict``).

        Returns:
            int: the row's ``total_steps``.

        Example::

            @staticmethod
            def calculate_total_steps(arguments_dict):
                return len(arguments_dict['course_keys'])
        """
        return 1

    @classmethod
    def generate_name(cls, arguments_dict):  # noqa: ARG003  a hook: overrides read the arguments
        """
        A name the triggering user will understand; the task function's name unless overridden.

        Arguments:
            arguments_dict (dict): the invocation's arguments (see ``arguments_as_dict``).

        Returns:
            str: the row's ``name`` (a longer one is cut to 255 characters, ending with an ellipsis).

        Example::

            @classmethod
            def generate_name(cls, arguments_dict):
                return f"Export of {arguments_dict['course_key']}"
        """
        return inspect.unwrap(cls.run).__name__

    @classmethod
    def concurrency_key(cls, arguments_dict):  # noqa: ARG003  a hook: overrides read the arguments
        """
        What makes two invocations identical, as a string; None (the default) for never.

        While a task of this class, for the same user and with the same key, is Pending,
        In Progress or Retrying, publishing it again sends nothing and writes nothing:
        ``apply_async`` returns the active task's AsyncResult.

        Arguments:
            arguments_dict (dict): the invocation's arguments (see ``arguments_as_dict``).

        Returns:
            str or None: the key (``str()`` of what is returned), or None for no de-duplication.

        Example::

            @classmethod
            def concurrency_key(cls, arguments_dict):
                return arguments_dict['course_key_string']   # one export per course at a time
        """
        return None

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        """
        Publish the task; inside a transaction, record it now and publish after commit.

        Django ``TestCase``'s own atomic blocks do not count (``user_tasks.commit``).

        The row is written in the caller's transaction (so it rolls back with it) and
        the message is only sent once that transaction commits, so a worker never sees
        a task whose row it cannot read.

        A class using the OEP-3 hooks is admitted first (``user_tasks.admission``): an
        identical active task's AsyncResult is returned without sending anything.

        Returns:
            celery.result.AsyncResult: at once, deferred or not.

        Raises:
            TypeError: the invocation's ``user_id`` is missing or unknown.
            TooManyActiveTasks: the user has as many active tasks of the class as its limit.
            ArgumentsNotStorable: a retryable task's arguments are not JSON or too large.
        """
        canvas_owners.refuse_mixed_owners(self, args, kwargs, options)
        app = self._get_app()
        task_id = task_id or uuid()
        with _logging_refusal(self, task_id):
            admitted = admission.admit(self, args, kwargs, task_id, options, _has_concurrency_key(type(self)))
        if admitted is not None and not admitted.created:
            return self.AsyncResult(admitted.status.task_id)
        using = router.db_for_write(UserTaskStatus)
        if (not settings.USER_TASKS_PUBLISH_ON_COMMIT or app.conf.task_always_eager
                or not in_transaction(using)):
            try:
                return super().apply_async(args, kwargs, task_id=task_id, **options)
            except Exception:
                # The row was written just before the broker refused the message: a task
                # that was never sent must not sit Pending.
                canvas.forget_unsent(task_id)
                raise
        with _logging_refusal(self, task_id):
            canvas.record_publish(self, canvas.message_from_options(self, args, kwargs, task_id, options))
        # A producer lent by the caller (a group lends one to its members) is back in its
        # pool by commit time: the deferred publish acquires its own.
        options.pop('producer', None)
        publish = partial(super().apply_async, args, kwargs, task_id=task_id, **options)
        # Inside one of the library's own blocks (``commit.atomic``, e.g. a retry) the publish
        # waits for that block, then for the caller's commit, if there is one.
        after_commit(partial(_publish_or_forget, publish, task_id), using)
        return self.AsyncResult(task_id)

    def apply(self, args=None, kwargs=None, *more, **options):  # noqa: B026  Celery's own signature
        """Run the task eagerly, refusing it first when its canvas mixes users (as ``apply_async`` does)."""
        canvas_owners.refuse_mixed_owners(self, args, kwargs, options)
        return super().apply(args, kwargs, *more, **options)

    def __call__(self, *args, **kwargs):
        """Run the task body unless its status ended before it started (canceled or expired)."""
        skip = getattr(self.request, 'user_task_skip', None)
        if skip:
            LOG.info('Not running user task %s (%s): %s', self.request.id, self.name, skip)
            raise Ignore()
        kwargs = _without_unaccepted_name(type(self), kwargs)
        return lifecycle.around(lifecycle.EXECUTE, self, super().__call__, *args, **kwargs)


@contextmanager
def _logging_refusal(task, task_id):
    """Log a publish refused for its ``user_id`` (SPEC A5: it reaches the log), then let it raise.

    The ``before_task_publish`` receiver logs it on the path through Celery; these are the
    paths that write before Celery is called (admission, a publish deferred to commit).
    """
    try:
        yield
    except TypeError as exc:
        LOG.error('Not recording user task %s (%s): %s', task_id, task.name, exc)
        raise


def _publish_or_forget(publish, task_id):
    """
    Send a message deferred to the commit; when the broker refuses it, forget its row and raise.

    The row was committed with the caller's transaction, so it is deleted now, in autocommit,
    as the immediate path does: a task that was never sent must not sit Pending (SPEC C1).
    """
    try:
        publish()
    except Exception:
        canvas.forget_unsent(task_id)
        raise


@lru_cache(maxsize=None)
def _has_concurrency_key(cls):
    """Whether ``cls`` overrides ``UserTaskMixin.concurrency_key``."""
    return inspect.getattr_static(cls, 'concurrency_key') is not UserTaskMixin.__dict__['concurrency_key']


@lru_cache(maxsize=None)
def _run_signature(cls):
    """The signature of the task function, without ``self`` for bound tasks."""
    run = inspect.getattr_static(cls, 'run')
    if isinstance(run, staticmethod):
        return inspect.signature(run.__func__)
    signature = inspect.signature(cls.run)
    parameters = list(signature.parameters.values())[1:]
    return signature.replace(parameters=parameters)


def _accepts_keyword(cls, name):
    parameters = _run_signature(cls).parameters
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _without_unaccepted_name(cls, kwargs):
    """``kwargs`` without the container name when the task function cannot take it."""
    if utils.NAME_KEYWORD in kwargs and not _accepts_keyword(cls, utils.NAME_KEYWORD):
        return {key: value for key, value in kwargs.items() if key != utils.NAME_KEYWORD}
    return kwargs


class UserTask(UserTaskMixin, Task):
    """Abstract base class for Celery tasks that track their status for a user."""

    abstract = True


@shared_task(name='user_tasks.tasks.reap_stale_user_tasks')
def reap_stale_user_tasks():
    """Fail tasks whose worker died and tasks whose message never arrived (see ``user_tasks.recovery``)."""
    return recovery.reap()


@shared_task(name='user_tasks.tasks.terminate_canceled_task')
def terminate_canceled_task(task_id, deleted=False):
    """
    Terminate a task canceled while running that has not stopped by itself within its grace period.

    ``deleted``: the row was deleted after its cancel (``user_tasks.deletion``), so no row
    tells whether the work stopped; terminating a task id no worker runs does nothing.
    """
    row = UserTaskStatus.objects.filter(task_id=task_id).values('state', 'finished').first()
    if (row is None and deleted) or (
            row is not None and row['state'] == UserTaskStatus.CANCELED and row['finished'] is None):
        LOG.warning('Terminating canceled user task %s, still running after its grace period', task_id)
        control.terminate(task_id)
        return True
    return False


@shared_task(name='user_tasks.tasks.purge_old_user_tasks')
def purge_old_user_tasks():
    """Delete finished tasks (and their artifact files) older than ``USER_TASKS_MAX_AGE``."""
    return retention.purge()

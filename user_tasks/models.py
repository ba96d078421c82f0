r"""
The two models, and every change of a task's state.

A user task's life is a small state machine kept in one ``UserTaskStatus`` row::

    Pending -> In Progress -> Succeeded | Failed | Canceled
                    \-> Retrying -> In Progress ...   (custom in-progress texts allowed)

Each transition method below is the only writer of the columns it changes and is a
single conditional UPDATE, so a late or duplicate Celery signal cannot move a row that
has already ended, and concurrent children cannot finish a parent twice.  A transition
that ends a row announces it once, after commit (see ``user_tasks.lifecycle``).

``finished`` is set when a row is final *and* its work has stopped; it doubles as the
"stop already announced" marker, which is what keeps ``user_task_stopped`` to once.

Layer: the domain.  This module imports only the hub (``user_tasks.lifecycle``,
``user_tasks.control``) and the leaves (``conf``, ``exceptions``); never Celery
receivers, tasks or observability (docs/decisions/0006-lifecycle-events-and-observers.rst).
"""
import json
import logging
from uuid import uuid4

from django.conf import settings
from django.core.validators import URLValidator
from django.db import connections, models, router
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from model_utils.models import TimeStampedModel

from user_tasks import commit, control, lifecycle, localized, row_insert, status_connection, status_sql
from user_tasks.conf import get_storage
from user_tasks.conf import settings as user_tasks_settings
from user_tasks.exceptions import TaskCanceledException

LOG = logging.getLogger(__name__)


class UserTaskStatusQuerySet(models.QuerySet):
    """The filters the lists, the admin, the purge and the reaper share."""

    def newest_first(self):
        """Newest first, ties broken by id (the order of every list; index ``usertask_created_idx``)."""
        return self.order_by('-created', '-id')

    def final(self):
        """Rows in a final state (Succeeded, Failed, Canceled)."""
        return self.filter(state__in=UserTaskStatus.FINAL_STATES)

    def unfinished(self):
        """Rows not in a final state (waiting, running, or in a custom stage)."""
        return self.exclude(state__in=UserTaskStatus.FINAL_STATES)

    def recent_task_classes(self, sample):
        """
        The task classes of the ``sample`` newest rows, as a set (filter suggestions, no scan of a big table).

        Example::

            sorted(UserTaskStatus.objects.recent_task_classes(500))
        """
        return set(self.newest_first().values_list('task_class', flat=True)[:sample])


class UserTaskStatus(TimeStampedModel):
    """The status of one user-triggered Celery task, or of a group, chain or chord of them."""

    PENDING = 'Pending'
    IN_PROGRESS = 'In Progress'
    SUCCEEDED = 'Succeeded'
    FAILED = 'Failed'
    CANCELED = 'Canceled'
    RETRYING = 'Retrying'

    STATE_TRANSLATIONS = {
        PENDING: _('Pending'),
        IN_PROGRESS: _('In Progress'),
        SUCCEEDED: _('Succeeded'),
        FAILED: _('Failed'),
        CANCELED: _('Canceled'),
        RETRYING: _('Retrying'),
    }

    #: States a row never leaves.
    FINAL_STATES = (SUCCEEDED, FAILED, CANCELED)
    #: States in which no worker runs the task yet.
    WAITING_STATES = (PENDING, RETRYING)
    #: ``task_class`` values of container rows.
    CONTAINER_CLASSES = ('celery.group', 'celery.chain', 'celery.chord')

    uuid = models.UUIDField(_('uuid'), default=uuid4, unique=True, editable=False,
                            help_text=_('Unique identifier for this task'))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, verbose_name=_('user'),
                             help_text=_('The user who triggered the task'))
    task_id = models.CharField(_('task id'), max_length=128, unique=True, help_text=_('UUID of the Celery task'))
    parent = models.ForeignKey('self', on_delete=models.CASCADE, null=True, blank=True, verbose_name=_('parent'),
                               help_text=_('Status of the containing task group or chain, if any'))
    is_container = models.BooleanField(_('is container'), default=False,
                                       help_text=_('True if this status corresponds to a container of multiple tasks'))
    task_class = models.CharField(_('task class'), max_length=128,
                                  help_text=_('Fully qualified class name of the task being performed'))
    name = models.CharField(_('name'), max_length=255,
                            help_text=_('A name for this task which the triggering user will understand'))
    state = models.CharField(_('state'), max_length=128, default=PENDING)
    completed_steps = models.PositiveIntegerField(_('completed steps'), default=0)
    total_steps = models.PositiveIntegerField(_('total steps'))
    attempts = models.PositiveIntegerField(_('attempts'), default=1,
                                           help_text=_('How many times has execution been attempted?'))
    # Recovery timestamps (migration 0006); rows written by upstream leave them empty.
    started = models.DateTimeField(_('started'), null=True, blank=True, editable=False,
                                   help_text=_('When a worker last started running the task'))
    heartbeat = models.DateTimeField(_('heartbeat'), null=True, blank=True, editable=False,
                                     help_text=_('When the worker running the task last showed it was alive'))
    finished = models.DateTimeField(_('finished'), null=True, blank=True, editable=False,
                                    help_text=_('When the task reached a final state and stopped running'))
    # A translatable custom state (migration 0009, see user_tasks.localized): ``state`` keeps its
    # English rendering for every reader; these let each reader render it in their language.
    state_msgid = models.TextField(_('state message id'), null=True, blank=True, editable=False,
                                   help_text=_('The message id of a custom state set with parameters'))
    state_params = models.JSONField(_('state parameters'), null=True, blank=True, editable=False,
                                    help_text=_('The parameters of the custom state\'s message'))
    # OEP-3 (migration 0008); rows written by upstream or before leave them empty.
    concurrency_key = models.CharField(
        _('concurrency key'), max_length=255, null=True, blank=True, editable=False,
        help_text=_('Identifies identical tasks while this one is active; cleared when it ends'))
    arguments = models.JSONField(_('arguments'), null=True, blank=True, editable=False,
                                 help_text=_('The arguments of a retryable task, to try it again'))
    retried_as = models.UUIDField(_('retried as'), null=True, blank=True, editable=False,
                                  help_text=_('The uuid of the task that tried this one again'))

    objects = UserTaskStatusQuerySet.as_manager()

    class Meta:
        verbose_name = _('user task status')
        verbose_name_plural = _('user task statuses')
        # Newest-first lists (API per user, admin for all) and purge/reaper scans (migration 0007).
        indexes = [
            models.Index(fields=['user', 'created', 'id'], name='usertask_user_created_idx'),
            models.Index(fields=['created', 'id'], name='usertask_created_idx'),
            models.Index(fields=['state', 'finished'], name='usertask_state_finished_idx'),
            # The rows still running or waiting, by state and task, read at each metrics scrape (0010).
            models.Index(fields=['finished', 'state', 'task_class'], name='usertask_active_idx'),
        ]
        constraints = [
            # One active task per (user, class, key): NULLs are distinct in unique indexes on
            # PostgreSQL, MariaDB/MySQL and SQLite, so rows without a key (or ended) never clash.
            models.UniqueConstraint(fields=['user', 'task_class', 'concurrency_key'],
                                    name='usertask_active_key_uniq'),
        ]

    def __str__(self):
        return f'<UserTaskStatus: {self.name}>'

    @property
    def state_text(self):
        """The state in the active language: a standard one (lazy), or a custom stage rendered from its message."""
        if self.state in self.STATE_TRANSLATIONS:
            return self.STATE_TRANSLATIONS[self.state]
        msgid, params = self.state_message
        return localized.render(msgid, params)

    @property
    def state_message(self):
        """(English message id, parameters) of ``state_text``, for clients that translate themselves."""
        if self.state in self.STATE_TRANSLATIONS:
            return self.state, {}
        return localized.stored_message(self.state, self.state_msgid, self.state_params)

    @property
    def percent(self):
        """
        How much of the task is done, as a whole percentage from 0 to 100 (rounded down).

        A task without steps is 100 once it has succeeded and 0 before; the admin, the
        pages and anything else showing progress read this one value.
        """
        if self.total_steps > 0:
            return max(0, min(100, 100 * self.completed_steps // self.total_steps))
        return 100 if self.state == self.SUCCEEDED else 0

    # -- helpers -------------------------------------------------------------------

    def _ancestors(self):
        """Yield the parent, grandparent, ... through the cached ``parent`` instances."""
        node = self
        while node.parent_id is not None:
            node = node.parent
            yield node

    def _update(self, condition=None, pks=None, durable=False, **values):
        """Run one UPDATE on this row (or ``pks``) when ``condition`` holds; return the row count.

        In a worker it goes through the status connection (``user_tasks.status_connection``):
        committed at once, even while the task body holds a transaction open.  ``durable``:
        the UPDATE ends a task, so its commit waits for the flush even where starts and
        steps do not.
        """
        query = type(self).objects.filter(pk__in=pks) if pks is not None else type(self).objects.filter(pk=self.pk)
        if condition is not None:
            query = query.filter(condition)
        values.setdefault('modified', timezone.now())
        return status_connection.run(type(self), lambda alias: query.using(alias).update(**values), durable=durable)

    def _refresh_state(self):
        """Reload ``state`` after a conditional UPDATE matched nothing; return whether the row exists.

        Read through the connection that wrote (in a worker, the status connection).
        """
        query = type(self).objects.filter(pk=self.pk).values('state', 'finished')
        row = status_connection.run(type(self), lambda alias: query.using(alias).first())
        if row is not None:
            self.state, self.finished = row['state'], row['finished']
        return row is not None

    def _raise_if_canceled_or_gone(self):
        """
        After an UPDATE that matched nothing: raise if the task was canceled or its row deleted.

        Deleting a task that has not ended cancels it first; a row that is gone is treated
        as canceled, so the running body stops instead of reporting into nothing.
        """
        if not self._refresh_state() and not self.is_container:
            raise TaskCanceledException(f'The task {self.task_id} has been deleted')
        self._raise_if_canceled()

    def _raise_if_canceled(self):
        if not self.is_container and self.state == self.CANCELED:
            raise TaskCanceledException(f'The task {self.task_id} has been canceled')

    def _finish(self, state, condition, now, exception=None, using=None, **values):
        """Move this row to a final ``state`` when ``condition`` holds; announce it; return whether it moved."""
        if using is None:
            moved = self._update(condition, durable=True, state=state, finished=now, modified=now,
                                 concurrency_key=None, **values)
        else:  # inside a block already open on ``using``
            moved = type(self).objects.using(using).filter(pk=self.pk).filter(condition).update(
                state=state, finished=now, modified=now, concurrency_key=None, **values)
        if moved:
            self.state, self.finished, self.modified, self.concurrency_key = state, now, now, None
            lifecycle.announce_stopped(self, exception)
        return bool(moved)

    # -- recording and recovery (called by user_tasks.canvas and user_tasks.recovery) --------

    def submit(self, queue=None):
        """
        Insert this new row, as its task is published, and announce it.

        Arguments:
            queue (str or None): the routing key of the message, when the publisher knows it.

        Returns:
            UserTaskStatus: this row, saved.

        Raises:
            django.db.IntegrityError: when a row with the same ``task_id`` exists (or the user does not).

        Example::

            UserTaskStatus(task_id=task_id, task_class='app.tasks.export', name='Export',
                           total_steps=3, user_id=user.pk).submit()
        """
        self.name = localized.fit(self.name, localized.NAME_MAX_LENGTH)  # a host's name may be longer
        # save(force_insert=True), with its SQL built once per backend (user_tasks.row_insert).
        row_insert.insert(self, router.db_for_write(type(self), instance=self))
        lifecycle.announce(self, lifecycle.SUBMITTED, queue=queue)
        return self

    @classmethod
    def submit_many(cls, rows, queues=None):
        """
        Insert new rows in one statement (the members of a chain) and announce each.

        Arguments:
            rows (list[UserTaskStatus]): unsaved rows.
            queues (dict or None): task id -> routing key, for the rows whose message is known.

        Returns:
            list[UserTaskStatus]: the rows, saved.
        """
        for row in rows:
            row.name = localized.fit(row.name, localized.NAME_MAX_LENGTH)
        cls.objects.bulk_create(rows)
        queues = queues or {}
        for row in rows:
            lifecycle.announce(row, lifecycle.SUBMITTED, queue=queues.get(row.task_id))
        return rows

    def recover(self, message, reason):
        """
        Fail a task whose worker or message was lost, and announce the recovery.

        Arguments:
            message (str): the user-safe text of the ``Error`` artifact.
            reason (str): ``stale`` (its worker stopped) or ``pending_timeout`` (its message never ran).

        Returns:
            bool: whether this call ended the row (False when it had already ended).
        """
        if not self.fail(message):
            return False
        lifecycle.announce(self, lifecycle.RECOVERED, reason=reason)
        return True

    # -- transitions ---------------------------------------------------------------

    def start(self, attempt=None):
        """
        Mark the task In Progress (and a waiting parent with it); raise if it was canceled.

        ``attempt`` (1-based, from the worker's request) is recorded in ``attempts``: Celery
        publishes a retry before it reports it, so another worker child may start the next
        attempt before ``retry`` runs, and ``retry`` must see that it came too late.

        Arguments:
            attempt (int or None): the number of the attempt starting, when the worker knows it.

        Returns:
            bool: whether the row moved (False when it had already ended).

        Raises:
            TaskCanceledException: the task (not a container) was canceled.

        Example::

            status.start(attempt=task.request.retries + 1)
        """
        self._raise_if_canceled()
        now = timezone.now()
        values = {'state': self.IN_PROGRESS, 'started': now, 'heartbeat': now, 'modified': now}
        if attempt is not None:
            values['attempts'] = Greatest(F('attempts'), attempt)
        if self._update(~Q(state__in=self.FINAL_STATES), **values):
            previous, self.state, self.started, self.heartbeat = self.state, self.IN_PROGRESS, now, now
            if attempt is not None:
                self.attempts = max(self.attempts, attempt)
            lifecycle.announce(self, lifecycle.STARTED, previous_state=previous)
            self._start_waiting_parent(now)
            return True
        self._refresh_state()
        self._raise_if_canceled()
        return False

    @classmethod
    def start_task(cls, task_id, attempt=None):
        """
        Start the row of ``task_id`` in one statement and return it, or None to use ``start``.

        Where the database has ``UPDATE ... RETURNING`` (PostgreSQL, SQLite 3.35+), the
        transition of ``start`` and the read of the row are one statement: a worker runs a
        task in two statements (this one, then ``succeed``) instead of three.  None means
        nothing was started: no such row (eager run, uncommitted publisher), a row that has
        ended or was canceled, or a database without it (MariaDB): the caller then loads
        the row and calls ``start``, which raises for a canceled one.

        The previous state is not returned by the UPDATE; the STARTED event derives it from
        the attempt: Pending for a first attempt, Retrying for a later one.
        """
        base = router.db_for_write(cls)
        if not status_sql.can_update_returning(connections[base]):
            return None
        rows = status_connection.run(
            cls, lambda alias: status_sql.start(cls, connections[alias], task_id, timezone.now(), attempt))
        if not rows:
            return None
        status = rows[0]
        status._state.db = base  # the model's alias: rows the body relates to it are written there
        previous = cls.PENDING if status.attempts <= 1 else cls.RETRYING
        lifecycle.announce(status, lifecycle.STARTED, previous_state=previous)
        status._start_waiting_parent(status.started)
        return status

    def _start_waiting_parent(self, now):
        for parent in self._ancestors():
            if not parent._update(Q(state__in=self.WAITING_STATES), state=self.IN_PROGRESS,
                                  started=now, modified=now):
                return
            parent.state, parent.started = self.IN_PROGRESS, now

    def increment_completed_steps(self, steps=1):
        """
        Add ``steps`` to the completed steps here and on every ancestor; then raise if canceled.

        As 4.0, the steps are counted even when the task was canceled meanwhile (users see
        "1 of 3" on a task canceled after its first step), and the cancellation is read by the
        same statement that counts them (ADR 0002).

        Arguments:
            steps (int): how many steps were just completed.

        Raises:
            TaskCanceledException: the task (not a container) was canceled; the body should stop.

        Example::

            for course in courses:
                export(course)
                self.status.increment_completed_steps()
        """
        now = timezone.now()
        values = {'completed_steps': F('completed_steps') + steps, 'modified': now}
        if self.is_container:
            if not self._update(**values):
                return
        else:
            state = self._add_steps_returning_state(steps, now)
            if state is None:
                # A deleted row counts as canceled (deleting a running task cancels it first):
                # the body stops instead of reporting into nothing.
                raise TaskCanceledException(f'The task {self.task_id} has been deleted')
            self.state = state
        self.completed_steps += steps
        self._add_to_ancestors('completed_steps', steps, now)
        lifecycle.announce(self, lifecycle.PROGRESS, steps=steps)
        self._raise_if_canceled()

    def _add_steps_returning_state(self, steps, now):
        """
        Count ``steps`` done and touch the heartbeat; return the row's state (None: no row).

        One ``UPDATE ... RETURNING`` where the database has it (PostgreSQL, SQLite 3.35+);
        MariaDB reads the state in a second statement.  In a worker, through the status
        connection (``user_tasks.status_connection``).
        """
        return status_connection.run(
            type(self), lambda alias: status_sql.add_steps(type(self), connections[alias], self.pk, steps, now))

    def increment_total_steps(self, steps):
        """
        Add ``steps`` to the total steps here and on every ancestor, in one statement.

        Arguments:
            steps (int): how many more steps the task has found it must do.

        Example::

            self.status.increment_total_steps(len(extra_files))
        """
        ancestors = list(self._ancestors())
        self._update(pks=[self.pk] + [a.pk for a in ancestors], total_steps=F('total_steps') + steps)
        for node in [self] + ancestors:
            node.total_steps += steps

    def _add_to_ancestors(self, field, steps, now):
        ancestors = list(self._ancestors())
        if ancestors:
            # A container that has ended holds its final count (a finished group has all its
            # steps): a sibling's late add after the last child finished it must not over-count.
            self._update(Q(finished__isnull=True), pks=[a.pk for a in ancestors], modified=now,
                         **{field: F(field) + steps})
            for node in ancestors:
                setattr(node, field, getattr(node, field) + steps)

    def set_state(self, custom_state, **params):
        """
        Store a custom in-progress text; a chain or chord parent shows it too.

        ``state`` stores the English text, as 4.0 did; each reader sees it in their language
        (``state_text``, rendered from the message id and parameters: ``user_tasks.localized``).

        Arguments:
            custom_state (str): a gettext message id (mark it with ``gettext_noop``), e.g. ``'Validating'``;
                its English rendering is cut to 128 characters, ending with an ellipsis, when longer.
            **params: the values of its placeholders (JSON values).

        Raises:
            TaskCanceledException: the task (not a container) was canceled.
            KeyError: a placeholder of ``custom_state`` without its parameter.
            TypeError: a parameter JSON cannot hold.

        Example::

            self.status.set_state(gettext_noop('Compressing %(count)s files'), count=12)
        """
        stored_params = localized.checked_params(custom_state, params)
        state = localized.english(custom_state, stored_params)
        msgid = custom_state if stored_params else None
        self._raise_if_canceled()
        if not self._update(~Q(state__in=self.FINAL_STATES), state=state, state_msgid=msgid,
                            state_params=stored_params):
            self._raise_if_canceled_or_gone()
            return
        self.state, self.state_msgid, self.state_params = state, msgid, stored_params
        parent = self.parent if self.parent_id else None
        if parent is not None and parent.task_class in ('celery.chain', 'celery.chord'):
            parent.set_state(custom_state, **params)

    def set_name(self, name):
        """
        Rename the task and every ancestor.

        Arguments:
            name (str): a name the triggering user will understand (cut to 255 characters,
                ending with an ellipsis, when longer).

        Example::

            self.status.set_name(f'Import of {course_key}')
        """
        name = localized.fit(name, localized.NAME_MAX_LENGTH)
        nodes = [self] + list(self._ancestors())
        self._update(pks=[n.pk for n in nodes], name=name)
        for node in nodes:
            node.name = name

    def fail(self, message, exception=None):
        """
        End the task as Failed with an ``Error`` artifact holding ``message``; fail the parent too.

        A dict message is stored as JSON, which Studio's export status view parses.

        Arguments:
            message (str or dict): what the user is shown.
            exception (BaseException or None): what ended the task, when known; it travels in
                the ``STOPPED`` event to the observers (metrics count its class).

        Returns:
            bool: whether this call ended the row (False when it had already ended).

        Example::

            status.fail({'raw_error_msg': 'The course could not be exported.'})
        """
        text = json.dumps(message) if isinstance(message, dict) else str(message)
        now = timezone.now()

        def end(alias):
            with commit.atomic(using=alias):
                if self._finish(self.FAILED, ~Q(state__in=self.FINAL_STATES) & Q(finished__isnull=True), now,
                                exception=exception, using=alias):
                    UserTaskArtifact.objects.using(alias).create(status=self, name='Error', text=text)
                    return True
            return False
        moved = status_connection.run(type(self), end, durable=True)
        if not moved:
            self._refresh_state()
            return False
        if self.parent_id is not None:
            self.parent.fail(message, exception)
            # Celery stops a chain at a failed member and never runs a failed chord's body:
            # they end Canceled now rather than Failed ("message lost") at the pending timeout.
            # After the parent's failure, so a cascade that breaks cannot leave it unfailed.
            self._cancel_what_follows()
        return True

    def retry(self, attempt=None, exception=None):
        """
        Count another attempt and mark the task Retrying; the parent is untouched.

        Arguments:
            attempt (int or None): the number of the attempt asking to be retried: once a later
                attempt has started (or ended) the row is left alone, so it is neither counted
                twice nor marked Retrying while the next attempt runs.
            exception (BaseException or None): why it is retried; carried by the ``RETRIED`` event.

        Example::

            status.retry(attempt=request.retries + 1, exception=exc)
        """
        condition, attempts = ~Q(state__in=self.FINAL_STATES), F('attempts') + 1
        if attempt is not None:
            condition, attempts = condition & Q(attempts__lte=attempt), attempt + 1
        if self._update(condition, state=self.RETRYING, attempts=attempts):
            self.state, self.attempts = self.RETRYING, self.attempts + 1 if attempt is None else attempts
            lifecycle.announce(self, lifecycle.RETRIED, exception=exception)

    def succeed(self):
        """
        End the task as Succeeded with all steps done; the parent succeeds once all its children have.

        Returns:
            bool: whether this call ended the row (False when it had ended, or is Retrying).

        Example::

            if not status.succeed():
                status.mark_stopped()  # what the task_success receiver does
        """
        now = timezone.now()
        remaining = self.total_steps - self.completed_steps
        # A success has nothing to try again: its stored arguments go in the same UPDATE.
        moved = status_connection.run(
            type(self), lambda alias: status_sql.succeed(type(self), connections[alias], self.pk, now), durable=True)
        if not moved:
            self._refresh_state()
            return False
        self.state, self.finished, self.modified, self.concurrency_key = self.SUCCEEDED, now, now, None
        lifecycle.announce_stopped(self)
        self.completed_steps, self.arguments = self.total_steps, None
        if self.parent_id is not None:
            if remaining > 0:
                self._add_to_ancestors('completed_steps', remaining, now)
            self.parent.end_if_children_ended(now)
        return True

    def end_if_children_ended(self, now=None):
        """
        End this container once every child has ended: Succeeded if all succeeded, else Canceled.

        A child has ended when it Succeeded, or was Canceled and its work has stopped
        (``finished``); a Failed child has failed the container already (``fail``).  Called
        when a child ends (``succeed``, a cancel, ``mark_stopped``) and by the reaper for
        containers left behind.  A container ended Canceled cancels what would have run
        after it in its own chain or chord, then its parent is checked in turn.

        Arguments:
            now (datetime or None): the time of the end (default: now).

        Returns:
            bool: whether this call ended the container.

        Example::

            container.end_if_children_ended()
        """
        now = now or timezone.now()
        state = status_connection.run(
            type(self), lambda alias: status_sql.end_container(type(self), connections[alias], self.pk, now),
            durable=True)
        if state is None:
            return False
        self.state, self.finished, self.modified, self.concurrency_key = state, now, now, None
        if state == self.SUCCEEDED:
            self.completed_steps = self.total_steps
        lifecycle.announce_stopped(self)
        if state == self.CANCELED:
            self._member_canceled(now, stopped=True)
        elif self.parent_id is not None:
            self.parent.end_if_children_ended(now)
        return True

    def _member_canceled(self, now, stopped):
        """
        This row was just canceled: cancel what would only have run after it; end its container if it can.

        ``stopped``: this row's work has stopped, so its container may end now (otherwise it
        is checked when the work stops).
        """
        if self.parent_id is None or getattr(self.parent, '_canceling_children', False):
            return  # a container canceling every child ends itself afterwards
        self._cancel_what_follows()
        if stopped:
            self.parent.end_if_children_ended(now)

    def _cancel_what_follows(self):
        """
        Cancel the members of this row's canvas that only run after it, which now never will.

        In a chain, the later members (they wait for this one); under a chord, the body, when
        this row is the chord's header.  Called when this row is canceled or fails.
        """
        parent = self.parent
        rest = None
        if parent.task_class == 'celery.chain':
            rest = type(self).objects.filter(parent_id=parent.pk, pk__gt=self.pk)
        elif parent.task_class == 'celery.chord' and self.is_container:
            rest = type(self).objects.filter(parent_id=parent.pk, is_container=False)
        if rest is not None:
            for member in rest.filter(state__in=self.WAITING_STATES).order_by('pk'):
                member.parent = parent
                member._cancel(in_canvas=True)

    def cancel(self):
        """
        Cancel the task, or every task in a container.

        A waiting task is revoked in Celery and ends Canceled at once.  A running task is
        marked Canceled and stops at its next progress call; its stop is announced then.
        A task that already ended is left as it is.  Observers wrap the whole call
        (``lifecycle.CANCEL``).  In a canvas, what would only run after it is canceled too
        (the later members of its chain; a chord's body when its header is canceled), and
        its container ends once every child has (``end_if_children_ended``).

        Returns:
            bool: whether the row changed.

        Example::

            if request.user.has_perm('user_tasks.cancel_usertaskstatus', status):
                status.cancel()
        """
        return lifecycle.around(lifecycle.CANCEL, self, self._cancel)

    def _cancel(self, in_canvas=False):
        """``cancel``; ``in_canvas``: part of a member's cancel, which cancels the rest and ends the container."""
        now = timezone.now()
        if self.is_container:
            # Every child is canceled, then this container ends itself: the children's cancels
            # neither end it nor cancel one another (``_member_canceled``).
            self._canceling_children = True
            try:
                for child in type(self).objects.filter(parent_id=self.pk):
                    child.parent = self
                    child.cancel()
            finally:
                self._canceling_children = False
            if self._finish(self.CANCELED, ~Q(state__in=self.FINAL_STATES) & Q(finished__isnull=True), now):
                if not in_canvas:
                    self._member_canceled(now, stopped=True)
                return True
            return False
        if self.state in self.WAITING_STATES:
            control.revoke(self.task_id)
            if self._finish(self.CANCELED, Q(state__in=self.WAITING_STATES), now):
                if not in_canvas:
                    self._member_canceled(now, stopped=True)
                return True
            self._refresh_state()
        if self.state in self.FINAL_STATES:
            return False
        if self._update(~Q(state__in=self.FINAL_STATES), state=self.CANCELED, modified=now, concurrency_key=None):
            self.state, self.concurrency_key = self.CANCELED, None
            lifecycle.announce(self, lifecycle.CANCELED)
            self._schedule_termination()
            if not in_canvas:
                self._member_canceled(now, stopped=False)  # its container ends when its work stops
            return True
        self._refresh_state()
        return False

    def _schedule_termination(self):
        """Terminate a canceled running task after its grace period, if its class opted in."""
        grace = (user_tasks_settings.USER_TASKS_TERMINATE_AFTER or {}).get(self.task_class)
        if grace is None:
            return
        control.schedule_termination(self.task_id, grace, using=status_connection.alias_for(type(self)))

    def mark_stopped(self):
        """
        Record that the work of a row that already ended has stopped, and announce it once.

        Used when a task canceled while running stops (by raising, or by returning).

        Returns:
            bool: whether this call recorded the stop (False when it was recorded before).

        Example::

            status.cancel()        # running: Canceled now, stopped later
            ...                    # the body raises TaskCanceledException at its next step
            status.mark_stopped()  # the stop is announced once (user_task_stopped)
        """
        if self.finished is not None:
            return False
        now = timezone.now()
        moved = self._update(Q(state__in=self.FINAL_STATES) & Q(finished__isnull=True), durable=True,
                             finished=now, modified=now)
        if moved:
            self._refresh_state()
            lifecycle.announce_stopped(self)
            if self.parent_id is not None:
                self.parent.end_if_children_ended(now)  # a canceled member has stopped
        return bool(moved)


class UserTaskArtifact(TimeStampedModel):
    """Output of a user task: a file, a URL, or a text (an ``Error`` artifact holds a failure message)."""

    uuid = models.UUIDField(_('uuid'), default=uuid4, unique=True, editable=False,
                            help_text=_('Unique identifier for this artifact'))
    status = models.ForeignKey(UserTaskStatus, on_delete=models.CASCADE, related_name='artifacts',
                               verbose_name=_('status'))
    name = models.CharField(_('name'), max_length=255, default='Output',
                            help_text=_('Distinguishes between multiple artifact types for the same task'))
    file = models.FileField(_('file'), null=True, blank=True, storage=get_storage, upload_to='user_tasks/%Y/%m/%d/')
    url = models.TextField(_('url'), blank=True, validators=[URLValidator()])
    text = models.TextField(_('text'), blank=True)

    class Meta:
        verbose_name = _('user task artifact')
        verbose_name_plural = _('user task artifacts')
        # Newest-first lists in the API and the admin (migration 0007).
        indexes = [models.Index(fields=['created', 'id'], name='usertaskartifact_created_idx')]

    def __str__(self):
        if self.file:
            content = self.file.name
        elif self.url:
            content = self.url
        elif len(self.text) > 50:
            content = self.text[:47] + '...'
        else:
            content = self.text
        return f'<UserTaskArtifact: ({self.name}) {content}>'


class PeriodicJobRun(models.Model):
    """
    When each periodic job (the reaper, the purge) last ran: one row per job.

    Kept in the database because the jobs run in a worker or a cron container while the
    web ``/metrics`` view of any process must report it (a process-local cache would not
    be seen there).  One UPDATE per run.
    """

    REAPER = 'reaper'
    PURGE = 'purge'

    job = models.CharField(max_length=64, unique=True)
    last_run = models.DateTimeField()

    def __str__(self):
        return f'<PeriodicJobRun: {self.job} {self.last_run.isoformat()}>'

    @classmethod
    def record(cls, job, when):
        """Note that ``job`` ran at ``when``: an UPDATE, plus an INSERT the very first time."""
        if not cls.objects.filter(job=job).update(last_run=when):
            cls.objects.update_or_create(job=job, defaults={'last_run': when})

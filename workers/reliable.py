"""The reliable task: at-least-once delivery, effects guarded by an idempotency key.

Every task of the project is declared with :func:`reliable_task`, which fixes the
conventions: an explicit name, a queue from :mod:`workers.routing`, soft and
hard time limits, late acknowledgement, re-queue on worker loss, and a required
``idempotency_key`` keyword argument. Around the body, :class:`ReliableTask`:

* counts the delivery in Redis before the body runs (keyed by task id and retry
  number); past ``CELERY_TASK_MAX_DELIVERIES`` the message is a poison message —
  its runs kill the worker — and becomes a dead letter instead of running again;
* retries transient errors (:mod:`workers.errors`) with capped exponential
  backoff and full jitter (:mod:`workers.backoff`), up to ``max_retries``;
* never lets its own bookkeeping on the broker lose a message: a delivery count that
  cannot be taken runs the message uncounted, and a retry or database wait that cannot
  be published (Celery would reject, that is drop, the message) puts the message back
  for redelivery when the broker is the cause (:meth:`ReliableTask._unpublished`);
* waits out an unreachable database (``app.db_availability.database_unreachable``):
  it runs again after a backoff capped at ``CELERY_DB_WAIT_CAP_SECONDS``, for as long
  as the outage lasts, without spending a retry (an outage is not the message's fault,
  and a batch dead-lettered because PostgreSQL restarted would be a loss);
* turns everything else — a permanent error, the last retry, a hard time limit
  (Celery 5.7 calls ``on_failure`` for it in the worker's main process, see
  :mod:`workers.failed_runs`) — into one :class:`~workers.models.DeadLetter`, and
  marks its outbox row failed;
* marks the outbox row that published the message done when the body succeeds, and
  clears the message's publish-journal entry when its run begins (:mod:`workers.journal`);
  on a Redis broker its own publishes (``enqueue``, ``apply_async``, retries, database
  waits, beat) are journaled (``workers.publish.journaled``);
* logs one structured line per start / success / retry / failure with the task
  id, idempotency key, retailer, request id (from the web request that
  published it) and duration, and counts outcomes for ``/metrics``.

``atomic_once=True`` runs the whole body inside :func:`workers.idempotency.db_once`:
use it when the body only writes to the database (no network I/O).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from celery import Task
from celery.exceptions import Reject, Retry
from django.conf import settings

from app import metrics
from app.celery import celery_app
from app.db_availability import database_unreachable
from app.request_context import bind_request_id, reset_request_id
from workers.backoff import backoff_for, max_countdown
from workers.broker import DELIVERIES_PREFIX, delivery_count_increment
from workers.errors import PermanentError, PoisonMessageError, is_transient
from workers.failed_runs import STARTED_AT, failed_run
from workers.idempotency import db_once
from workers.journal import JOURNALED_HEADER, journal_clear
from workers.publish import journaled
from workers.routing import Queue
from workers.services import deadletter_record, outbox_mark_done

log = structlog.get_logger("workers.task")

DATABASE_WAITS_HEADER = "database_waits"  # how many times this message waited for the database
CONTEXT_FIELDS = ("task", "task_id", "idempotency_key", "retailer_id", "request_id", "delivery", "retries", "pid")


class ReliableTask(Task):  # type: ignore[misc]
    abstract = True
    Request = "workers.failed_runs:HardLimitRequest"
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    queue: str  # set by reliable_task from workers.routing
    max_retries: int | None = None
    backoff_base: float | None = None
    backoff_cap: float | None = None
    backoff_jitter: Callable[[], float] = staticmethod(random.random)
    transient_errors: tuple[type[BaseException], ...] = ()
    atomic_once = False
    # Called with the task's kwargs and the error once its message became a dead letter, so the
    # job it belonged to can end (a backup whose copy task failed for good must not run forever).
    on_dead_letter: Callable[[dict[str, Any], str], None] | None = None

    def enqueue(self, *, idempotency_key: str, **kwargs: Any) -> Any:
        """Publish with JSON kwargs and the message's idempotency key."""
        return self.apply_async(kwargs={**kwargs, "idempotency_key": idempotency_key})

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:  # type: ignore[override]
        delay = _delay_seconds(options.get("countdown"), options.get("eta"))
        if delay > max_countdown():
            raise ValueError(
                f"{self.name}: a delay of {delay:.0f}s (countdown or eta) exceeds half the visibility timeout; "
                "schedule long delays with a database next_attempt_at instead"
            )
        return super().apply_async(args, kwargs, **journaled(options))

    @property
    def retry_limit(self) -> int:
        return settings.CELERY_TASK_MAX_RETRIES if self.max_retries is None else self.max_retries

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        key = kwargs.get("idempotency_key")
        token = bind_request_id(request.get("request_id"))
        structlog.contextvars.bind_contextvars(
            task=self.name,
            task_id=request.id,
            idempotency_key=key,
            retailer_id=kwargs.get("retailer_id"),
            request_id=request.get("request_id"),
            retries=request.retries,
            pid=os.getpid(),
        )
        try:
            return self._run_guarded(key, args, kwargs)
        finally:
            structlog.contextvars.unbind_contextvars(*CONTEXT_FIELDS)
            reset_request_id(token)

    def _run_guarded(self, key: str | None, args: Any, kwargs: dict[str, Any]) -> Any:
        request = self.request
        if request.get(JOURNALED_HEADER):
            self._journal_clear(str(request.id))
        if not key:
            raise PermanentError(f"{self.name} was published without an idempotency_key")
        delivery = self._delivery_number()
        structlog.contextvars.bind_contextvars(delivery=delivery)
        if delivery > settings.CELERY_TASK_MAX_DELIVERIES:
            raise PoisonMessageError(
                f"delivered {delivery} times without finishing (each run ended its worker process)"
            )
        log.info("task_started")
        started = time.monotonic()
        setattr(request, STARTED_AT, started)
        try:
            result = self._body(key, args, kwargs)
            self._finished(request)
        except Retry:
            metrics.task_outcome(self.name, ("retried",), time.monotonic() - started, forget=self._delivery_key())
            raise
        except Exception as error:
            self._retry_or_raise(error, time.monotonic() - started)
            raise
        duration = time.monotonic() - started
        metrics.task_outcome(self.name, ("succeeded",), duration, forget=self._delivery_key())
        log.info("task_succeeded", duration_ms=round(duration * 1000, 2))
        return result

    @staticmethod
    def _journal_clear(task_id: str) -> None:
        """kombu holds the message from here on; a failed clear costs at most one harmless rerun."""
        try:
            journal_clear(task_id)
        except redis.RedisError as error:
            log.warning("journal_clear_failed", error=f"{type(error).__name__}: {error}")

    def _delivery_number(self) -> int:
        """Which delivery of this message this is. A first delivery costs nothing; the
        broker marks a message it hands out again (restored after a worker died, or
        requeued when a pool process was lost) as redelivered, and only those are
        counted, in Redis, so the hot path pays no extra round trip."""
        if self._delivery_key() is None:
            return 1
        request = self.request
        ttl = settings.CELERY_VISIBILITY_TIMEOUT * (settings.CELERY_TASK_MAX_DELIVERIES + 1)
        try:
            return 1 + delivery_count_increment(str(request.id), request.retries, ttl)
        except redis.RedisError as error:
            # A broker blip (or an error reply) must not make a dead letter of a message that
            # never ran: it runs uncounted, at worst one delivery past the poison limit.
            log.warning("delivery_count_unavailable", error=f"{type(error).__name__}: {error}")
            return 1

    def _body(self, key: str, args: Any, kwargs: dict[str, Any]) -> Any:
        if not self.atomic_once:
            return self.run(*args, **kwargs)
        applied, result = db_once(key=f"{self.name}:{key}", effect=lambda: self.run(*args, **kwargs))
        if not applied:
            log.info("task_duplicate_skipped")
        return result

    def _retry_or_raise(self, error: Exception, duration: float) -> None:
        if database_unreachable(error):
            raise self._database_wait(error, duration)
        retries = self.request.retries
        if not is_transient(error, self.transient_errors) or retries >= self.retry_limit:
            return
        backoff = backoff_for(
            retries,
            base=self.backoff_base if self.backoff_base is not None else settings.CELERY_RETRY_BACKOFF_BASE,
            cap=self.backoff_cap if self.backoff_cap is not None else settings.CELERY_RETRY_BACKOFF_CAP,
            jitter=self.backoff_jitter,
        )
        log.warning(
            "task_retry",
            error=f"{type(error).__name__}: {error}",
            attempt=retries + 1,
            ceiling_s=round(backoff.ceiling, 3),
            countdown_s=round(backoff.delay, 3),
            duration_ms=round(duration * 1000, 2),
        )
        metrics.task_outcome(self.name, ("failed", "retried"), duration, forget=self._delivery_key())
        try:
            raise self.retry(
                exc=error, countdown=backoff.delay, max_retries=self.retry_limit, headers=self._carried_headers()
            )
        except Reject as dropped:  # Celery.retry's answer to a publish that failed: drop the message
            reason = getattr(dropped, "reason", None)  # the publish error (celery's stubs omit the attribute)
            raise self._unpublished(reason if isinstance(reason, Exception) else error) from error

    def _unpublished(self, error: Exception) -> Reject:
        """What to raise when the message's retry (or database wait) could not be published:
        ``Reject(requeue=True)``, the message back to its queue. A requeue marks it redelivered,
        so the poison limit bounds a loop; a broker too far away even for the requeue leaves
        it unacknowledged, for the reconnect's restore or dead-consumer recovery
        (``workers.kombu_redis``: a requeue the broker refuses is tried again)."""
        log.warning("task_retry_unpublished", error=f"{type(error).__name__}: {error}")
        return Reject(error, requeue=True)

    def _database_wait(self, error: Exception, duration: float) -> Retry | Reject:
        """Publish this message again after a backoff, with its retry count unchanged (what
        ``Task.retry`` does, minus the count), and return the ``Retry`` to raise (or, when the
        publish failed, what :meth:`_unpublished` answers)."""
        request = self.request
        waits = int(request.get(DATABASE_WAITS_HEADER) or 0)
        backoff = backoff_for(
            waits,
            base=settings.CELERY_RETRY_BACKOFF_BASE,
            cap=settings.CELERY_DB_WAIT_CAP_SECONDS,
            jitter=self.backoff_jitter,
        )
        log.warning(
            "task_database_wait",
            error=f"{type(error).__name__}: {error}",
            waits=waits + 1,
            countdown_s=round(backoff.delay, 3),
            duration_ms=round(duration * 1000, 2),
        )
        metrics.task_outcome(self.name, ("database_wait",), duration, forget=self._delivery_key())
        headers = {**self._carried_headers(), DATABASE_WAITS_HEADER: waits + 1}
        signature = self.signature_from_request(
            request, countdown=backoff.delay, retries=request.retries, headers=headers
        )
        try:
            signature.apply_async()
        except Exception as unpublished:  # noqa: BLE001 - whatever the cause, the message stays the broker's
            return self._unpublished(unpublished)
        return Retry(exc=error, when=backoff.delay, sig=signature)  # type: ignore[arg-type]  # a float is a Real

    def _carried_headers(self) -> dict[str, Any]:
        """Headers a retry must keep (Celery does not copy custom headers to the retry)."""
        return {name: self.request.get(name) for name in ("outbox_id", "request_id") if self.request.get(name)}

    def _delivery_key(self) -> str | None:
        """The Redis key counting this message's deliveries, if it was counted (redelivered)."""
        request = self.request
        redelivered = request.get("redelivered") or (request.delivery_info or {}).get("redelivered")
        return f"{DELIVERIES_PREFIX}:{request.id}:{request.retries}" if redelivered and request.id else None

    def _finished(self, request: Any) -> None:
        outbox_id = request.get("outbox_id")
        if outbox_id:
            outbox_mark_done(outbox_id=int(outbox_id))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Every final failure becomes a dead letter. Runs in the pool process for errors
        raised by the body, and in the worker's main process for a hard time limit."""
        run = failed_run(self.request, task_id)
        letter = deadletter_record(
            task_name=self.name,
            task_id=task_id,
            queue=getattr(self, "queue", None) or "",
            kwargs=dict(kwargs or {}),
            exception=f"{type(exc).__name__}: {exc}",
            traceback=str(einfo or ""),
            attempts=run.retries + 1,
            outbox_id=run.outbox_id,
        )
        forget = self._delivery_key() if run.in_task_process else None
        metrics.task_outcome(self.name, ("failed", "dead_lettered"), run.duration, forget=forget)
        log.error(
            "task_dead_lettered",
            task=self.name,
            task_id=task_id,
            idempotency_key=(kwargs or {}).get("idempotency_key"),
            retailer_id=(kwargs or {}).get("retailer_id"),
            request_id=run.request_id,
            error=f"{type(exc).__name__}: {exc}",
            dead_letter_id=letter.pk,
            attempts=run.retries + 1,
            duration_ms=None if run.duration is None else round(run.duration * 1000, 2),
        )
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(dict(kwargs or {}), f"{type(exc).__name__}: {exc}")
            except Exception:  # the dead letter stands with the task's own error; the job's sweep ends the job
                log.exception("dead_letter_hook_failed", task=self.name, task_id=task_id, dead_letter_id=letter.pk)


def _delay_seconds(countdown: float | None, eta: datetime | str | None) -> float:
    """How far in the future a publish asks to run: the longer of ``countdown`` and ``eta``
    (Celery reads a naive ``eta`` in the app's time zone, UTC)."""
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    until_eta = 0.0
    if eta is not None:
        aware = eta if eta.tzinfo else eta.replace(tzinfo=UTC)
        until_eta = (aware - datetime.now(UTC)).total_seconds()
    return max(countdown or 0.0, until_eta)


def reliable_task(
    *,
    name: str,
    queue: Queue,
    soft_time_limit: int,
    time_limit: int,
    **options: Any,
) -> Callable[[Callable[..., Any]], ReliableTask]:
    """Declare a task. The body takes ``idempotency_key`` as a keyword argument.

    Options beyond Celery's: ``max_retries``, ``backoff_base``, ``backoff_cap``,
    ``backoff_jitter`` (a ``() -> [0, 1]`` callable), ``transient_errors`` (extra
    exception types worth a retry), ``atomic_once`` (body in one transaction with
    a unique claim on (task name, idempotency key)), ``on_dead_letter`` (a
    ``(kwargs, error) -> None`` called after the message became a dead letter).
    """
    if time_limit <= soft_time_limit:
        raise ValueError(f"{name}: time_limit must exceed soft_time_limit")
    for hook in ("backoff_jitter", "on_dead_letter"):
        if hook in options:
            options[hook] = staticmethod(options[hook])

    def register(body: Callable[..., Any]) -> ReliableTask:
        task: ReliableTask = celery_app.task(
            name=name,
            base=ReliableTask,
            queue=queue.value,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            **options,
        )(body)
        return task

    return register

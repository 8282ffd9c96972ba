"""The service's failure policy, written once: whose fault is an error, and what follows.

=========  ==========================================  ====================================
Fault      Examples                                    What the service does
=========  ==========================================  ====================================
POISON     a contract error; a text the tokenizer or   dead-letter the record (reason and
           model rejects; a value the database         error class), commit, go on. Found
           refuses (NUL, too long, a constraint)       by isolation: the rest of the batch
                                                       is scored and written.
TRANSIENT  database unreachable, timed out or locked;  retry with back-off (tenacity); the
           broker unavailable or timing out            batch's offsets are not committed
                                                       until everything is confirmed.
FATAL      a broken or missing model bundle; a model   stop with a clear error (exit 70):
           that fails even on a known-good text; a     retrying or dead-lettering would
           database schema that does not match         only hide it.
=========  ==========================================  ====================================

Errors are classified here, at one boundary, and nowhere else. An error the policy does not
know is *suspect*: the work is split (bisection) until it is pinned on one record, which is
then poison; a record whose batch keeps failing as a whole is dead-lettered after
``ServiceSettings.max_record_attempts`` deliveries, so nothing is retried forever.

Texts are sensitive: :func:`describe` gives the error class and, only for errors whose
message is ours, the message. Database drivers, pydantic and tokenizers put the input
values into their messages, so those are never shown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

from schemas.errors import (
    BundleError,
    ConfigurationError,
    ContractError,
    DepdetectError,
    TransientError,
)


class Fault(StrEnum):
    POISON = "poison"
    """The record's fault: dead-letter it and go on."""
    TRANSIENT = "transient"
    """The environment's fault: retry with back-off, commit nothing meanwhile."""
    FATAL = "fatal"
    """Cannot work at all: stop with a clear error."""
    SUSPECT = "suspect"
    """Unknown: isolate the record(s) responsible; poison once pinned on one record."""


class FatalError(DepdetectError):
    """The service cannot go on (a broken model, a database schema that does not match)."""


class PoisonError(DepdetectError):
    """One record cannot be processed; ``reason`` is safe to log and to dead-letter."""

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


#: Exit status when a fatal error stops the service.
FATAL_EXIT_CODE = 70

_TRANSIENT_DB = (
    sa_exc.OperationalError,  # connection lost, server shutting down, lock/statement timeout
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the connection pool is exhausted (e.g. by hung calls)
    sa_exc.DisconnectionError,
)
_RECORD_DB = (sa_exc.DataError, sa_exc.IntegrityError)
_SQLITE_SCHEMA = ("no such table", "no such column", "table classification_results has no")
_FATAL_DB = (sa_exc.ProgrammingError, sa_exc.NoSuchTableError)
#: Broker errors that say something about the record rather than the cluster.
_RECORD_KAFKA = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordTooLargeError)


def classify(exc: BaseException) -> Fault:
    """Whose fault is ``exc``? The one place that decides."""
    if isinstance(exc, PoisonError | ContractError):
        return Fault.POISON
    if isinstance(exc, FatalError | BundleError | ConfigurationError):
        return Fault.FATAL
    if isinstance(exc, TransientError):
        return Fault.TRANSIENT
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Fault.TRANSIENT
    if isinstance(exc, sa_exc.OperationalError) and str(exc.orig).startswith(_SQLITE_SCHEMA):
        return Fault.FATAL  # SQLite reports a missing table as "operational"
    if isinstance(exc, _TRANSIENT_DB):
        return Fault.TRANSIENT
    if isinstance(exc, _FATAL_DB):
        return Fault.FATAL
    if isinstance(exc, _RECORD_DB):
        return Fault.POISON
    if isinstance(exc, _RECORD_KAFKA):
        return Fault.POISON
    if isinstance(exc, kafka_errors.KafkaError | ConnectionError | TimeoutError):
        return Fault.TRANSIENT
    if isinstance(exc, MemoryError | RecursionError):
        return Fault.FATAL
    return Fault.SUSPECT


def describe(exc: BaseException) -> str:
    """A log- and dead-letter-safe description: the error class, and the message only
    where the message is ours (it then holds ids, counts and field names, never texts)."""
    name = type(exc).__name__
    if isinstance(exc, ContractError):
        return exc.reason
    if isinstance(exc, PoisonError):
        return exc.reason
    if isinstance(exc, DepdetectError) and not isinstance(exc, TransientError):
        return f"{name}: {exc}"
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        # The driver's message may quote the value ("invalid input … 'the text'"); its class
        # (and SQLSTATE) says enough to act on.
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return f"{name} ({type(orig).__module__}.{type(orig).__name__}" + (
            f", SQLSTATE {code})" if code else ")"
        )
    if isinstance(exc, TransientError) and exc.__cause__ is not None:
        return f"{name} caused by {describe(exc.__cause__)}"
    return name


def error_type(exc: BaseException) -> str:
    """The error class recorded in a dead letter: the innermost driver class when there is one."""
    if isinstance(exc, PoisonError):
        return exc.error_type
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__}/{type(exc.orig).__name__}"
    return type(exc).__name__


@contextmanager
def database_errors() -> Iterator[None]:
    """The database boundary: transient errors become ``TransientError`` (retried by the
    ``Retrier``), schema errors ``FatalError``; record errors pass on for isolation."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        fault = classify(exc)
        if fault is Fault.TRANSIENT:
            raise TransientError(f"database unavailable: {describe(exc)}") from exc
        if fault is Fault.FATAL:
            raise FatalError(
                f"the database refuses the service's statements ({describe(exc)}): "
                "is the schema migrated (`depdetect db migrate`)?"
            ) from exc
        raise


class Attempts:
    """How often each record's batch failed as a whole, per (topic, partition, offset).

    In memory: after a restart or a rebalance the count starts again, which at worst
    allows a few more attempts, never an endless loop within one member's lifetime.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Failures that count towards the limit (not transient ones: an outage of the
        #: database must not dead-letter the records that happened to be in flight).
        self._failures: dict[tuple[str, int, int], int] = {}
        #: Every record whose batch failed, for whatever reason (redeliveries).
        self._failed: set[tuple[str, int, int]] = set()

    @staticmethod
    def _key(record: Any) -> tuple[str, int, int]:
        return (record.topic, record.partition, record.offset)

    def seen_before(self, records: Sequence[Any]) -> int:
        """How many of ``records`` are back after a failure (redeliveries)."""
        return sum(1 for r in records if self._key(r) in self._failed)

    #: Failures of records this member no longer holds (a rebalance) are not forgotten
    #: one by one; past this many entries the oldest half goes.
    MAX_ENTRIES = 100_000

    def failed(self, records: Sequence[Any], *, counts: bool = True) -> int:
        """Note that the batch of ``records`` failed; when it ``counts`` (the fault was not
        transient), one more attempt for each record. Returns the highest count."""
        if len(self._failures) > self.MAX_ENTRIES:
            for key in list(self._failures)[: self.MAX_ENTRIES // 2]:
                del self._failures[key]
        if len(self._failed) > self.MAX_ENTRIES:
            self._failed.clear()
        highest = 0
        for r in records:
            key = self._key(r)
            self._failed.add(key)
            if counts:
                self._failures[key] = self._failures.get(key, 0) + 1
            highest = max(highest, self._failures.get(key, 0))
        return highest

    def exhausted(self, records: Sequence[Any]) -> bool:
        """True when some record has failed ``limit`` times: process them one by one."""
        return any(self._failures.get(self._key(r), 0) >= self.limit for r in records)

    def count(self, record: Any) -> int:
        return self._failures.get(self._key(record), 0)

    def succeeded(self, records: Sequence[Any]) -> None:
        for r in records:
            self._failures.pop(self._key(r), None)
            self._failed.discard(self._key(r))

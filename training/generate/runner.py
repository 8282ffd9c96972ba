"""Orchestration: plan → submit → poll → results → retries → outputs, resumable throughout."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import anthropic
import pydantic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from schemas.errors import ConfigurationError, TransientError
from schemas.text import dedup_key
from training.generate.batches import BatchApi
from training.generate.config import Bucket, GenerationConfig, RunOptions
from training.generate.errors import (
    BatchSubmissionError,
    GenerationError,
    ResponseParseError,
    RunConflictError,
)
from training.generate.parsing import answer_text, parse_texts
from training.generate.plan import build_plan
from training.generate.progress import RunProgress
from training.generate.seeds import load_seeds
from training.generate.state import RequestStatus, RunStore, StoredRequest
from training.generate.validation import Reason, TextValidator

log = logging.getLogger(__name__)

CONFIG_KEY = "config"
FINGERPRINT_KEY = "config_fingerprint"
#: How far before a lost submission's start a matching batch may have been created
#: (clock skew between this machine and the API).
RECONCILE_SLACK_S = 300.0


def open_run(run_dir: Path, config: GenerationConfig, options: RunOptions) -> RunStore:
    """Create the run (plan persisted before anything is sent) or reopen it unchanged."""
    store = RunStore(run_dir)
    stored = store.get_meta(FINGERPRINT_KEY)
    if stored is None:
        plan = build_plan(config, load_seeds(options.seed_dir))
        store.save_plan(
            plan,
            {
                CONFIG_KEY: config.model_dump_json(),
                FINGERPRINT_KEY: config.fingerprint(),
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
        log.info("new run in %s: %d requests", run_dir, len(plan))
    elif stored != config.fingerprint():
        store.close()
        raise RunConflictError(
            f"{run_dir} holds a run with another generation config; resume it with the same "
            "options (`report` shows them) or choose a new run directory"
        )
    return store


def stored_config(store: RunStore) -> GenerationConfig | None:
    raw = store.get_meta(CONFIG_KEY)
    return None if raw is None else GenerationConfig.model_validate_json(raw)


class _Usage(TypedDict):
    model: str
    input_tokens: int
    output_tokens: int


def _ended(batch: MessageBatch) -> int:
    counts = batch.request_counts
    return counts.succeeded + counts.errored + counts.expired + counts.canceled


class Generator:
    def __init__(
        self,
        store: RunStore,
        config: GenerationConfig,
        options: RunOptions,
        api: BatchApi,
        *,
        validator: TextValidator | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: RunProgress | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.options = options
        self.api = api
        self.validator = validator or TextValidator(config.length_tolerance)
        self._sleep = sleep
        self._progress = progress or RunProgress(enabled=options.show_progress)
        self._max_attempts = 1 + options.retry_limit

    def run(self) -> dict[str, int]:
        """Work until every request is done or failed; returns request counts by status."""
        revived = self.store.revive_failed(self._max_attempts)
        if revived:
            log.info("%d failed requests get another attempt under the new retry limit", revived)
        with self._progress:
            self._reconcile()
            while True:
                self._submit_pending()
                open_batches = self.store.open_batches()
                if not open_batches:
                    break
                self._await_and_process(open_batches)
        return self.store.status_counts()

    # -- submission --------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Settle submissions a killed run left open: adopt the batch, or release the requests."""
        for submission in self.store.open_submissions():
            since = datetime.fromtimestamp(submission.started_at - RECONCILE_SLACK_S, tz=UTC)
            known = self.store.known_batch_ids()
            candidates = [
                batch
                for batch in self.api.created_since(since)
                if batch.id not in known
                and _ended(batch) + batch.request_counts.processing == submission.n_requests
            ]
            if len(candidates) == 1:
                batch = candidates[0]
                log.warning("adopting batch %s created by an interrupted run", batch.id)
                self.store.confirm_submission(
                    submission.submission_id, batch.id, batch.processing_status
                )
            elif not candidates:
                log.warning(
                    "interrupted submission %d never created a batch; resubmitting",
                    submission.submission_id,
                )
                self.store.abandon_submission(submission.submission_id)
            else:
                ids = ", ".join(batch.id for batch in candidates)
                raise RunConflictError(
                    f"an interrupted submission of {submission.n_requests} requests matches "
                    f"several batches ({ids}); cancel the extra ones in the console, then "
                    "rerun: the run adopts the one that is left"
                )

    def _chunks(self, items: list[tuple[StoredRequest, int]]) -> Iterator[list[Any]]:
        """Cut at max requests or max bytes per batch, whichever comes first."""
        chunk: list[tuple[StoredRequest, int]] = []
        size = 0
        for request, attempt in items:
            body = {"custom_id": request.custom_id(attempt), "params": request.params}
            item_bytes = len(json.dumps(body, ensure_ascii=False).encode()) + 2
            if item_bytes + 64 > self.options.max_batch_bytes:
                raise ConfigurationError(
                    f"request {request.request_id} alone is {item_bytes} bytes, over the "
                    "batch byte limit"
                )
            full = len(chunk) >= self.options.max_requests_per_batch
            if chunk and (full or size + item_bytes + 64 > self.options.max_batch_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append((request, attempt))
            size += item_bytes
        if chunk:
            yield chunk

    def _submit_pending(self) -> None:
        pending = self.store.requests(RequestStatus.PENDING)
        if not pending:
            return
        self._progress.grow("submit", len(pending))
        items = [(request, request.attempts + 1) for request in pending]
        for chunk in self._chunks(items):
            body = [
                {"custom_id": request.custom_id(attempt), "params": request.params}
                for request, attempt in chunk
            ]
            submission_id = self.store.begin_submission(chunk)
            try:
                batch = self.api.create(body)
            except anthropic.APIStatusError as exc:
                if exc.status_code >= 500 and exc.status_code not in {503, 529}:
                    # The server may have created it before failing: reconcile on rerun.
                    raise BatchSubmissionError(
                        f"creating a batch failed ({exc.status_code}); rerun to reconcile"
                    ) from exc
                # A 4xx (or exhausted 429/503/529) means nothing was created.
                self.store.abandon_submission(submission_id)
                if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
                    raise ConfigurationError(f"the API refused the key: {exc.message}") from exc
                if exc.status_code in {429, 503, 529}:
                    raise TransientError(
                        f"the API stayed busy ({exc.status_code}); rerun later to continue"
                    ) from exc
                raise GenerationError(f"the API rejected the batch: {exc.message}") from exc
            except anthropic.APIConnectionError as exc:
                raise BatchSubmissionError(
                    "lost the connection while creating a batch; rerun to reconcile "
                    "(the run checks whether the batch exists before sending anything again)"
                ) from exc
            self.store.confirm_submission(submission_id, batch.id, batch.processing_status)
            log.info("batch %s created with %d requests", batch.id, len(chunk))
            self._progress.advance("submit", len(chunk))

    # -- polling and results -----------------------------------------------------------

    def _await_and_process(self, batch_ids: list[str]) -> None:
        remaining = list(batch_ids)
        totals: dict[str, int] = {}
        done: dict[str, int] = {}
        interval = self.options.timing.poll_initial_s
        while remaining:
            for batch_id in list(remaining):
                try:
                    batch = self.api.retrieve(batch_id)
                except anthropic.APIError as exc:
                    # The SDK already retried; the batch keeps running, a rerun picks it up.
                    raise TransientError(
                        f"checking batch {batch_id} failed ({exc}); rerun to resume"
                    ) from exc
                self.store.set_batch_status(batch_id, batch.processing_status)
                totals[batch_id] = _ended(batch) + batch.request_counts.processing
                done[batch_id] = _ended(batch)
                if batch.processing_status == "ended":
                    self._process_results(batch_id)
                    remaining.remove(batch_id)
            self._progress.set("poll", sum(done.values()), sum(totals.values()))
            if remaining:
                self._sleep(interval)
                interval = min(
                    interval * self.options.timing.poll_factor, self.options.timing.poll_max_s
                )

    def _process_results(self, batch_id: str) -> None:
        """All results of one batch in one transaction, matched by custom_id."""
        expected = self.store.batch_attempts(batch_id)
        self._progress.grow("parse", len(expected))
        try:
            self._store_results(batch_id, expected)
        except (anthropic.APIError, json.JSONDecodeError, pydantic.ValidationError) as exc:
            # Nothing of this batch was kept (rolled back); its results stay downloadable.
            raise TransientError(
                f"reading the results of batch {batch_id} failed ({exc}); rerun to resume"
            ) from exc

    def _store_results(self, batch_id: str, expected: dict[str, tuple[str, int]]) -> None:
        seen: set[str] = set()
        with self.store.transaction():
            for line in self.api.results(batch_id):
                custom_id = line.custom_id
                if custom_id not in expected:
                    log.warning(
                        "batch %s returned unknown custom_id %r; ignored", batch_id, custom_id
                    )
                    continue
                if custom_id in seen:
                    log.warning("batch %s returned %r twice; kept the first", batch_id, custom_id)
                    continue
                seen.add(custom_id)
                request_id, attempt = expected[custom_id]
                self._handle(line, batch_id, self.store.request(request_id), attempt)
                self._progress.advance("parse")
            for custom_id in sorted(set(expected) - seen):
                request_id, attempt = expected[custom_id]
                self.store.record_result(
                    custom_id,
                    result_type="missing",
                    outcome="missing",
                    error="no result line for this request",
                    raw=None,
                )
                self._retry_or_fail(request_id, attempt, "missing: no result line")
                self._progress.advance("parse")
            self.store.finish_batch(batch_id)

    def _handle(
        self,
        line: MessageBatchIndividualResponse,
        batch_id: str,
        request: StoredRequest,
        attempt: int,
    ) -> None:
        result = line.result
        custom_id = line.custom_id
        raw = line.model_dump_json()
        if result.type != "succeeded":
            error = None
            if result.type == "errored":
                error = f"{result.error.error.type}: {result.error.error.message}"
            self.store.record_result(
                custom_id, result_type=result.type, outcome=result.type, error=error, raw=raw
            )
            self._retry_or_fail(request.request_id, attempt, error or result.type)
            return
        message = result.message
        usage = _Usage(
            model=message.model,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
        )
        if message.stop_reason == "refusal":
            self.store.record_result(
                custom_id,
                result_type="succeeded",
                outcome="refusal",
                error="the model refused",
                raw=raw,
                **usage,
            )
            self._retry_or_fail(request.request_id, attempt, "refusal")
            return
        try:
            texts = parse_texts(answer_text(message))
        except ResponseParseError as exc:
            outcome = "truncated" if message.stop_reason == "max_tokens" else "unparseable"
            self.store.record_result(
                custom_id,
                result_type="succeeded",
                outcome=outcome,
                error=str(exc),
                raw=raw,
                **usage,
            )
            self._retry_or_fail(request.request_id, attempt, f"{outcome}: {exc}")
            return
        self.store.record_result(
            custom_id, result_type="succeeded", outcome="parsed", error=None, raw=raw, **usage
        )
        bucket = Bucket(min_words=request.min_words, max_words=request.max_words, share=1.0)
        for position, text in enumerate(texts):
            verdict = self.validator.check(text, language=request.language, bucket=bucket)
            key = dedup_key(verdict.text)
            reason, detail = verdict.reason, verdict.detail
            if reason is None and self.store.is_duplicate(key):
                reason, detail = Reason.DUPLICATE, "same text accepted earlier"
            self.store.add_text(
                request_id=request.request_id,
                custom_id=custom_id,
                batch_id=batch_id,
                position=position,
                text=verdict.text,
                word_count=verdict.word_count,
                detected_language=verdict.detected_language,
                reason=reason.value if reason else None,
                detail=detail,
                dedup_key=key,
                model=message.model,
            )
        self.store.set_request_status(request.request_id, RequestStatus.DONE)

    def _retry_or_fail(self, request_id: str, attempt: int, error: str) -> None:
        status = RequestStatus.PENDING if attempt < self._max_attempts else RequestStatus.FAILED
        self.store.set_request_status(request_id, status, error)

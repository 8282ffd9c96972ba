"""The generator end to end against the real SDK, whose HTTP transport replays the API.

`FakeBatchesApi` answers the four Message Batches routes the SDK calls (create,
retrieve, list, results as JSON lines) with the API's JSON shapes. Nothing here opens a
socket: the SDK gets an HTTP client built on a mock transport.
"""

from __future__ import annotations

import csv
import importlib
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import pytest
import typer
from typer.testing import CliRunner

from depdetect.settings import Settings
from schemas.errors import DepdetectError, TransientError
from training.generate.batches import BatchApi, make_client
from training.generate.config import (
    DEFAULT_CATEGORIES,
    Bucket,
    GenerationConfig,
    RunOptions,
    Timing,
)
from training.generate.errors import BatchSubmissionError, RunConflictError
from training.generate.report import cell_counts, export_outputs, group_counts, write_report
from training.generate.runner import Generator, open_run
from training.generate.validation import LanguageDetector

# anthropic>=2 speaks httpx2 (same API as httpx); older SDKs take an httpx client.
httpx = importlib.import_module(
    "httpx2" if int(anthropic.__version__.split(".")[0]) >= 2 else "httpx"
)

BASE_URL = "https://api.anthropic.test"
MODEL_ID = "claude-sonnet-4-5-20250929"
PASSAGES = {
    "en": "today I walked to the market with my sister and we talked about the week, the "
    "weather was cold but the coffee was warm and the people were friendly, after lunch I "
    "finished the report for work and called my father who told me about his garden, in the "
    "evening we cooked pasta together and watched a film about an old sailor who wanted to "
    "see the ocean one more time before winter came to the little town where he had lived "
    "for most of his long and quiet life",
    "es": "hoy caminé hasta el mercado con mi hermana y hablamos de la semana, hacía frío pero "
    "el café estaba caliente y la gente era muy amable, después del almuerzo terminé el "
    "informe del trabajo y llamé a mi padre que me contó cosas de su jardín, por la noche "
    "cocinamos juntos una cena sencilla y vimos una película sobre un marinero viejo que "
    "quería ver el mar una vez más antes de que llegara el invierno al pueblo donde había "
    "vivido casi toda su vida tranquila",
}
LANGUAGE_CODES = {"English": "en", "Spanish": "es"}

SMALL = GenerationConfig(
    languages=("en", "es"),
    categories=("Self-Worth",),
    buckets=(
        Bucket(min_words=9, max_words=15, share=0.5),
        Bucket(min_words=16, max_words=35, share=0.5),
    ),
    texts_per_cell=4,
    texts_per_request=2,
    model="claude-sonnet-4-5",
)
# 2 languages × 2 states × 1 category × 2 buckets = 8 cells, 2 requests of 2 texts each.
N_REQUESTS = 16
N_TEXTS = 32


class FakeBatchesApi:
    """The Message Batches API in memory.

    `script` maps a request id to the behaviour of its 1st, 2nd, … attempt: "ok",
    "errored", "expired", "canceled", "broken_json", "fenced", "wrong_language",
    "too_long", "duplicate", "refusal", "truncated", "missing" (no result line),
    "unknown_id" (a line with a custom_id never sent). Unscripted attempts are "ok".
    """

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        *,
        polls_before_end: int = 2,
        create_failures: list[int] | None = None,
        lose_create_response: str | None = None,
        break_results_once: bool = False,
    ) -> None:
        self.script = script or {}
        self.polls_before_end = polls_before_end
        self.create_failures = list(create_failures or [])
        # "after" = the batch is created but the answer never arrives; "before" = never sent.
        self.lose_create_response = lose_create_response
        self.break_results_once = break_results_once
        self.calls: Counter[str] = Counter()
        self.create_bodies: list[list[dict[str, Any]]] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.attempts: Counter[str] = Counter()
        self.offset = 0

    # -- transport ---------------------------------------------------------------------

    def client(self) -> anthropic.Anthropic:
        http_client = httpx.Client(transport=httpx.MockTransport(self.handle))
        return make_client("test-key", max_retries=0, base_url=BASE_URL, http_client=http_client)

    def handle(self, request: Any) -> Any:
        path = request.url.path
        # The key travels as x-api-key (older SDKs) or as a bearer token (newer ones).
        assert "test-key" in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        )
        if request.method == "POST" and path == "/v1/messages/batches":
            return self._create(request)
        if request.method == "GET" and path == "/v1/messages/batches":
            self.calls["list"] += 1
            data = [self._batch_json(b) for b in reversed(self.batches.values())]
            return httpx.Response(
                200, json={"data": data, "has_more": False, "first_id": None, "last_id": None}
            )
        match = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
        if request.method == "GET" and match and match.group(1) in self.batches:
            batch = self.batches[match.group(1)]
            if match.group(2):
                return self._results(batch)
            self.calls["retrieve"] += 1
            batch["polls"] += 1
            return httpx.Response(200, json=self._batch_json(batch))
        raise AssertionError(f"unexpected call {request.method} {request.url}")

    def _create(self, request: Any) -> Any:
        self.calls["create"] += 1
        if self.create_failures:
            status = self.create_failures.pop(0)
            return httpx.Response(
                status,
                headers={"retry-after": "2", "request-id": "req_x"},
                json={
                    "type": "error",
                    "error": {
                        "type": "rate_limit_error",
                        "message": "Number of requests has exceeded your rate limit",
                    },
                },
            )
        if self.lose_create_response == "before":
            self.lose_create_response = None
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        self.create_bodies.append(body["requests"])
        batch_id = f"msgbatch_{len(self.batches) + 1:04d}"
        self.batches[batch_id] = {
            "id": batch_id,
            "requests": body["requests"],
            "created_at": datetime.now(UTC),
            "polls": 0,
            "results": None,
        }
        if self.lose_create_response == "after":
            self.lose_create_response = None
            raise httpx.ReadTimeout("timed out reading the response", request=request)
        return httpx.Response(200, json=self._batch_json(self.batches[batch_id]))

    def _batch_json(self, batch: dict[str, Any]) -> dict[str, Any]:
        ended = batch["polls"] >= self.polls_before_end
        n = len(batch["requests"])
        counts = {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            counts["processing"] = 0
            for line in self._result_lines(batch):
                counts[line["result"]["type"]] += 1
        created = batch["created_at"]
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "expires_at": (created + timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
            "ended_at": created.isoformat().replace("+00:00", "Z") if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{BASE_URL}/v1/messages/batches/{batch['id']}/results"
            if ended
            else None,
        }

    def _results(self, batch: dict[str, Any]) -> Any:
        self.calls["results"] += 1
        lines = [json.dumps(line, ensure_ascii=False) for line in self._result_lines(batch)]
        # Out of request order, as the API allows: results must be matched by custom_id.
        lines.reverse()
        if self.break_results_once:
            self.break_results_once = False
            lines = [*lines[: len(lines) // 2], '{"custom_id": "cut off in the mid']
        return httpx.Response(
            200,
            content=("\n".join(lines) + "\n").encode(),
            headers={"content-type": "application/binary"},
        )

    # -- answers -----------------------------------------------------------------------

    def _result_lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        # Decided once per batch, like a real batch's results file.
        if batch["results"] is None:
            lines = (self._result(item) for item in batch["requests"])
            batch["results"] = [line for line in lines if line is not None]
        return batch["results"]

    def _result(self, item: dict[str, Any]) -> dict[str, Any]:
        custom_id = item["custom_id"]
        request_id = custom_id.rsplit("-a", 1)[0]
        attempt = self.attempts[request_id]
        self.attempts[request_id] += 1
        plan = self.script.get(request_id, [])
        action = plan[attempt] if attempt < len(plan) else "ok"
        if action == "errored":
            result: dict[str, Any] = {
                "type": "errored",
                "error": {
                    "type": "error",
                    "request_id": "req_011",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                },
            }
        elif action in ("expired", "canceled"):
            result = {"type": action}
        else:
            result = {"type": "succeeded", "message": self._message(item["params"], action)}
        if action == "missing":
            return None
        if action == "unknown_id":
            custom_id = "never-sent-a1"
        return {"custom_id": custom_id, "result": result}

    def _message(self, params: dict[str, Any], action: str) -> dict[str, Any]:
        prompt = params["messages"][0]["content"]
        n, language = re.search(r"Write (\d+) different texts in (\w+)\.", prompt).groups()
        low, high = map(int, re.search(r"between (\d+) and (\d+) words", prompt).groups())
        code = LANGUAGE_CODES[language]
        texts = [self._text(code, (low + high) // 2) for _ in range(int(n))]
        if action == "wrong_language":
            texts[0] = self._text("en" if code == "es" else "es", (low + high) // 2)
        elif action == "too_long":
            texts[-1] = self._text(code, high * 2)
        elif action == "duplicate":
            texts[-1] = texts[0].upper() + "!"
        answer = json.dumps({"texts": texts}, ensure_ascii=False)
        if action == "broken_json":
            answer = answer[: len(answer) // 2]
        elif action == "fenced":
            answer = f"```json\n{answer}\n```\nI hope these work for your dataset."
        stop_reason = "end_turn"
        if action == "refusal":
            answer, stop_reason = "I can't help with that.", "refusal"
        elif action == "truncated":
            answer, stop_reason = answer[: len(answer) - 10], "max_tokens"
        return {
            "id": f"msg_{self.offset:06d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL_ID,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 640, "output_tokens": 25 * int(n)},
        }

    def _text(self, language: str, words: int) -> str:
        # A different window of a real passage each time: distinct texts of known language.
        passage = PASSAGES[language].split()
        self.offset += 1
        start = self.offset % len(passage)
        return " ".join((passage * 3)[start : start + words])


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    """Synthetic seed files of the real format, with the five default categories."""
    seed = tmp_path / "seed"
    seed.mkdir()
    with (seed / "mental_health_categories.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "negative_description", "positive_description"])
        for name in DEFAULT_CATEGORIES:
            writer.writerow([name, f"negative side of {name}", f"positive side of {name}"])
    with (seed / "depression_resilience_testimonials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["negative_testimonial", "positive_testimonial", "category"])
        for i, name in enumerate(DEFAULT_CATEGORIES * 2):
            writer.writerow([f"me siento vacía {i}", f"me siento en paz {i}", name])
    return seed


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


class Sleeps(list[float]):
    """Records waits instead of waiting; can simulate a kill at the n-th wait."""

    def __init__(self, kill_at: int | None = None) -> None:
        super().__init__()
        self.kill_at = kill_at

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.kill_at is not None and len(self) >= self.kill_at:
            self.kill_at = None
            raise KeyboardInterrupt


def make_generator(
    run_dir: Path,
    fake: FakeBatchesApi,
    seed_dir: Path,
    *,
    config: GenerationConfig = SMALL,
    sleep: Callable[[float], None] | None = None,
    timing: Timing | None = None,
    progress: Any = None,
    **option_values: Any,
) -> Generator:
    options = RunOptions(
        seed_dir=seed_dir,
        show_progress=False,
        sdk_max_retries=0,
        timing=timing
        or Timing(poll_initial_s=1.0, poll_max_s=4.0, create_wait_min_s=0.0, create_wait_max_s=0.0),
        **option_values,
    )
    sleep = sleep if sleep is not None else Sleeps()
    store = open_run(run_dir, config, options)
    api = BatchApi(fake.client(), options.timing, sleep=sleep)
    return Generator(store, config, options, api, sleep=sleep, progress=progress)


def run_to_end(generator: Generator) -> dict[str, int]:
    try:
        return generator.run()
    finally:
        generator.store.close()


def output_rows(run_dir: Path, seed_dir: Path, fake: FakeBatchesApi) -> list[dict[str, str]]:
    generator = make_generator(run_dir, fake, seed_dir)
    write_report(generator.store, run_dir)
    output, _rejects, _n, _m = export_outputs(generator.store, run_dir)
    generator.store.close()
    with output.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_result_type_is_handled_and_failures_are_retried(
    tmp_path: Path, seed_dir: Path, detector: LanguageDetector
) -> None:
    script = {
        "en-h-self-worth-b9-15-0000": ["errored", "ok"],
        "en-u-self-worth-b16-35-0001": ["expired", "ok"],
        "es-h-self-worth-b9-15-0001": ["broken_json", "ok"],
        "es-u-self-worth-b16-35-0000": ["wrong_language"],
        "en-u-self-worth-b9-15-0000": ["too_long"],
        "es-h-self-worth-b16-35-0000": ["fenced"],
        "en-h-self-worth-b16-35-0001": ["duplicate"],
    }
    fake = FakeBatchesApi(script)
    run_dir = tmp_path / "run"
    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))

    assert statuses == {"done": N_REQUESTS}
    # One batch with everything, one retry batch with exactly the three failed requests.
    assert fake.calls["create"] == 2
    assert len(fake.create_bodies[0]) == N_REQUESTS
    assert sorted(item["custom_id"] for item in fake.create_bodies[1]) == [
        "en-h-self-worth-b9-15-0000-a2",
        "en-u-self-worth-b16-35-0001-a2",
        "es-h-self-worth-b9-15-0001-a2",
    ]
    first = fake.create_bodies[0][0]["params"]
    assert first["model"] == "claude-sonnet-4-5"
    assert first["output_config"]["format"]["type"] == "json_schema"

    rows = output_rows(run_dir, seed_dir, fake)
    assert len(rows) == N_TEXTS - 3  # one wrong language, one too long, one duplicate
    for row in rows:
        # Results came back in reverse order; matching by position would mix en and es.
        assert detector.detect(row["text"]) == row["language"]
        low, high = (int(v) for v in row["bucket"].split("-"))
        assert low <= int(row["word_count"]) <= high
        assert row["label"] == ("1" if row["state"] == "Unhealthy" else "0")
        assert row["custom_id"].startswith(row["request_id"])
        assert row["batch_id"].startswith("msgbatch_") and row["model"] == MODEL_ID
        assert row["age_group"] and row["education"] and row["writing_style"] and row["context"]
    assert len({row["text"] for row in rows}) == len(rows)

    rejects = (run_dir / "rejects.csv").read_text(encoding="utf-8")
    for reason in ("wrong_language", "too_long", "duplicate", "errored", "expired", "unparseable"):
        assert reason in rejects

    totals = group_counts(cell_counts(make_generator(run_dir, fake, seed_dir).store), ())[0]
    assert (totals.requests, totals.requested_texts) == (N_REQUESTS, N_TEXTS)
    assert (totals.submitted, totals.retried, totals.received) == (19, 3, 17)
    assert (totals.failed_results, totals.parsed, totals.accepted) == (3, N_TEXTS, N_TEXTS - 3)
    assert totals.rejected == {
        "empty": 0,
        "too_short": 0,
        "too_long": 1,
        "wrong_language": 1,
        "duplicate": 1,
    }
    assert (totals.failed, totals.unfinished) == (0, 0)
    report = json.loads((run_dir / "report.json").read_text())
    assert len(report["cells"]) == 8
    cell = next(
        c
        for c in report["cells"]
        if c["language"] == "es" and c["state"] == "Unhealthy" and c["bucket"] == "16-35"
    )
    assert (cell["parsed"], cell["accepted"], cell["rejected_wrong_language"]) == (4, 3, 1)


def test_requests_fail_after_the_retry_limit_and_are_reported(
    tmp_path: Path, seed_dir: Path
) -> None:
    fake = FakeBatchesApi({"es-u-self-worth-b9-15-0001": ["canceled", "errored", "ok"]})
    run_dir = tmp_path / "run"
    statuses = run_to_end(make_generator(run_dir, fake, seed_dir, retry_limit=1))

    assert statuses == {"done": N_REQUESTS - 1, "failed": 1}
    assert fake.calls["create"] == 2
    store = make_generator(run_dir, fake, seed_dir, retry_limit=1).store
    failed_cell = next(c for c in cell_counts(store) if c.failed)
    assert (failed_cell.language, failed_cell.state, failed_cell.bucket) == (
        "es",
        "Unhealthy",
        "9-15",
    )
    assert (failed_cell.submitted, failed_cell.retried, failed_cell.failed_results) == (3, 1, 2)
    assert failed_cell.accepted == 2
    store.close()

    # Raising the limit on resume gives the failed request its third attempt.
    statuses = run_to_end(make_generator(run_dir, fake, seed_dir, retry_limit=2))
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 3
    assert [item["custom_id"] for item in fake.create_bodies[2]] == [
        "es-u-self-worth-b9-15-0001-a3"
    ]


def test_refusals_truncations_and_missing_lines_are_retried(tmp_path: Path, seed_dir: Path) -> None:
    script = {
        "en-h-self-worth-b9-15-0000": ["refusal"],
        "en-h-self-worth-b9-15-0001": ["truncated"],
        "es-u-self-worth-b9-15-0000": ["missing"],
        "es-u-self-worth-b9-15-0001": ["unknown_id"],
    }
    fake = FakeBatchesApi(script)
    run_dir = tmp_path / "run"
    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))

    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 2
    assert sorted(item["custom_id"].rsplit("-a", 1)[0] for item in fake.create_bodies[1]) == sorted(
        script
    )
    with sqlite3.connect(run_dir / "state.sqlite") as db:
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome"))
    assert outcomes == {"parsed": N_REQUESTS, "refusal": 1, "truncated": 1, "missing": 2}
    assert len(output_rows(run_dir, seed_dir, fake)) == N_TEXTS


def test_rate_limited_create_is_retried_with_back_off(tmp_path: Path, seed_dir: Path) -> None:
    fake = FakeBatchesApi(create_failures=[429, 529])
    sleeps = Sleeps()
    timing = Timing(poll_initial_s=1.0, create_wait_min_s=0.0, create_wait_max_s=10.0)
    statuses = run_to_end(
        make_generator(tmp_path / "run", fake, seed_dir, sleep=sleeps, timing=timing)
    )
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 3  # 429, 529, then created
    assert len(fake.batches) == 1
    assert sleeps[:2] == [2.0, 2.0]  # the server's Retry-After, not a busy loop


def test_create_that_stays_rate_limited_releases_the_requests(
    tmp_path: Path, seed_dir: Path
) -> None:
    fake = FakeBatchesApi(create_failures=[429] * 3)
    timing = Timing(create_wait_min_s=0.0, create_wait_max_s=0.0, create_attempts=3)
    generator = make_generator(tmp_path / "run", fake, seed_dir, timing=timing)
    with pytest.raises(TransientError, match="busy"):
        run_to_end(generator)
    # Nothing was created, so the requests are pending again and the next run sends them.
    statuses = run_to_end(make_generator(tmp_path / "run", fake, seed_dir))
    assert statuses == {"done": N_REQUESTS}
    assert len(fake.batches) == 1


def test_killed_while_polling_resumes_without_resubmitting(tmp_path: Path, seed_dir: Path) -> None:
    fake = FakeBatchesApi(polls_before_end=3)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_to_end(make_generator(run_dir, fake, seed_dir, sleep=Sleeps(kill_at=1)))
    assert fake.calls["create"] == 1
    assert fake.calls["results"] == 0

    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 1
    assert len(output_rows(run_dir, seed_dir, fake)) == N_TEXTS


def test_lost_create_response_is_reconciled_instead_of_paying_twice(
    tmp_path: Path, seed_dir: Path
) -> None:
    fake = FakeBatchesApi(lose_create_response="after")
    run_dir = tmp_path / "run"
    with pytest.raises(BatchSubmissionError, match="rerun"):
        run_to_end(make_generator(run_dir, fake, seed_dir))
    assert len(fake.batches) == 1  # the server did create it

    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 1  # adopted through the batch list, never sent again
    assert fake.calls["list"] == 1
    assert len(output_rows(run_dir, seed_dir, fake)) == N_TEXTS


def test_create_that_never_reached_the_api_is_sent_again(tmp_path: Path, seed_dir: Path) -> None:
    fake = FakeBatchesApi(lose_create_response="before")
    run_dir = tmp_path / "run"
    with pytest.raises(BatchSubmissionError):
        run_to_end(make_generator(run_dir, fake, seed_dir))
    assert fake.batches == {}

    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 2
    assert len(fake.batches) == 1


def test_results_interrupted_mid_stream_are_read_again_without_double_counting(
    tmp_path: Path, seed_dir: Path
) -> None:
    fake = FakeBatchesApi(break_results_once=True)
    run_dir = tmp_path / "run"
    with pytest.raises(TransientError, match="rerun to resume"):
        run_to_end(make_generator(run_dir, fake, seed_dir))
    with sqlite3.connect(run_dir / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM texts").fetchone()[0] == 0

    statuses = run_to_end(make_generator(run_dir, fake, seed_dir))
    assert statuses == {"done": N_REQUESTS}
    assert fake.calls["create"] == 1
    rows = output_rows(run_dir, seed_dir, fake)
    assert len(rows) == N_TEXTS  # no phantom duplicates from the rolled-back attempt


def test_batches_respect_request_and_byte_limits(tmp_path: Path, seed_dir: Path) -> None:
    fake = FakeBatchesApi()
    run_to_end(make_generator(tmp_path / "a", fake, seed_dir, max_requests_per_batch=5))
    assert [len(body) for body in fake.create_bodies] == [5, 5, 5, 1]

    fake = FakeBatchesApi()
    limit = 12_000
    run_to_end(make_generator(tmp_path / "b", fake, seed_dir, max_batch_bytes=limit))
    assert len(fake.create_bodies) > 1
    assert sum(len(body) for body in fake.create_bodies) == N_REQUESTS
    for body in fake.create_bodies:
        assert len(json.dumps({"requests": body}, ensure_ascii=False).encode()) <= limit


def test_progress_shows_submission_polling_and_parsing(tmp_path: Path, seed_dir: Path) -> None:
    import io

    from rich.console import Console

    from training.generate.progress import RunProgress

    out = io.StringIO()
    fake = FakeBatchesApi({"en-h-self-worth-b9-15-0000": ["errored"]})
    progress = RunProgress(enabled=True, console=Console(file=out, force_terminal=False, width=100))
    run_to_end(make_generator(tmp_path / "run", fake, seed_dir, progress=progress))
    final = out.getvalue()
    assert re.search(r"submit\s.*17/17", final)  # 16 requests, then one retry
    assert re.search(r"poll\s.*1/1", final)  # the last poll round: the retry batch
    assert re.search(r"parse\s.*17/17", final)


def test_a_run_directory_refuses_another_config(tmp_path: Path, seed_dir: Path) -> None:
    fake = FakeBatchesApi()
    run_to_end(make_generator(tmp_path / "run", fake, seed_dir))
    other = GenerationConfig(**{**SMALL.model_dump(), "texts_per_cell": 6})
    with pytest.raises(RunConflictError):
        make_generator(tmp_path / "run", fake, seed_dir, config=other)
    assert issubclass(RunConflictError, DepdetectError)


# -- command line ------------------------------------------------------------------------


def cli(settings: Settings) -> typer.Typer:
    """The generate commands under a root that supplies settings, as `depdetect` does."""
    from depdetect.cli.generate import app

    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = settings

    root.add_typer(app, name="generate")
    return root


def test_cli_plan_is_a_dry_run_of_the_full_default_plan(tmp_path: Path, seed_dir: Path) -> None:
    settings = Settings(_env_file=None, data={"seed_dir": seed_dir, "work_dir": tmp_path})
    result = CliRunner().invoke(cli(settings), ["generate", "plan"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cells: 300  requests: 6,000  texts: 30,000" in result.output
    assert "estimated tokens: input" in result.output
    assert "US$" in result.output
    assert not (tmp_path / "generation").exists()  # nothing written, nothing sent

    result = CliRunner().invoke(
        cli(settings), ["generate", "plan", "--languages", "fr", "--examples"]
    )
    assert result.exit_code == 0, result.output
    assert "Write 5 different texts in French." in result.output
    assert "Do not write about depression" in result.output
    assert "clinical depression indicators" in result.output


def test_cli_run_without_key_says_how_to_set_one(
    tmp_path: Path, seed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings = Settings(_env_file=None, data={"seed_dir": seed_dir, "work_dir": tmp_path})
    result = CliRunner().invoke(cli(settings), ["generate", "run"])
    assert result.exit_code == 1
    assert "DEPDETECT_ANTHROPIC__API_KEY" in result.output
    assert not (tmp_path / "generation").exists()


def test_cli_run_and_report_end_to_end(
    tmp_path: Path, seed_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeBatchesApi(polls_before_end=1)
    monkeypatch.setattr("training.generate.batches.make_client", lambda key, **_: fake.client())
    settings = Settings(
        _env_file=None,
        anthropic={"api_key": "test-key"},
        data={"seed_dir": seed_dir, "work_dir": tmp_path},
    )
    args = [
        "generate",
        "run",
        "--run-dir",
        str(tmp_path / "r"),
        "--languages",
        "en,es",
        "--categories",
        "Self-Worth",
        "--buckets",
        "9-15:0.5,16-35:0.5",
        "--texts-per-cell",
        "4",
        "--texts-per-request",
        "2",
    ]
    result = CliRunner().invoke(cli(settings), args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{N_TEXTS} texts in" in result.output
    assert (tmp_path / "r" / "texts.csv").exists() and (tmp_path / "r" / "rejects.csv").exists()

    # Resuming a finished run with no plan options sends nothing and reports the same.
    result = CliRunner().invoke(
        cli(settings), ["generate", "run", "--run-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert fake.calls["create"] == 1

    result = CliRunner().invoke(
        cli(settings),
        ["generate", "report", "--run-dir", str(tmp_path / "r"), "--by", "cell"],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Self-Worth") >= 8

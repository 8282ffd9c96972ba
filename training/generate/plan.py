"""The generation plan: cells (language × state × category × bucket) and their requests."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from training.generate.config import Bucket, GenerationConfig
from training.generate.personas import Persona, draw_persona
from training.generate.prompts import message_params, user_prompt
from training.generate.seeds import Seeds

# The Batches API accepts custom ids of 1-64 characters from this set.
CUSTOM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Cell:
    language: str
    state: str
    category: str
    bucket: Bucket
    target: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.language, self.state, self.category, self.bucket.label)


@dataclass(frozen=True)
class PlannedRequest:
    request_id: str
    cell: Cell
    n_texts: int
    persona: Persona
    params: dict[str, Any]

    def custom_id(self, attempt: int) -> str:
        return f"{self.request_id}-a{attempt}"


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def split_by_share(total: int, shares: Iterable[float]) -> list[int]:
    """Integer counts proportional to `shares` that add up to `total` (largest remainder)."""
    shares = list(shares)
    exact = [total * share for share in shares]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def split_even(total: int, per_chunk: int) -> list[int]:
    """`total` split into the fewest chunks of at most `per_chunk`, as even as possible."""
    if total <= 0:
        return []
    chunks = math.ceil(total / per_chunk)
    base, extra = divmod(total, chunks)
    return [base + 1 if i < extra else base for i in range(chunks)]


def build_cells(config: GenerationConfig) -> list[Cell]:
    group_total = config.texts_per_cell * len(config.buckets)
    targets = split_by_share(group_total, (bucket.share for bucket in config.buckets))
    return [
        Cell(language, state, category, bucket, target)
        for language in config.languages
        for state in config.states
        for category in config.categories
        for bucket, target in zip(config.buckets, targets, strict=True)
    ]


def build_plan(config: GenerationConfig, seeds: Seeds) -> list[PlannedRequest]:
    """Every request of the run, in a deterministic order, with persona and parameters."""
    requests: list[PlannedRequest] = []
    for cell in build_cells(config):
        category = seeds.category(cell.category)
        prefix = "-".join(
            (
                cell.language,
                cell.state[0].lower(),
                slug(cell.category)[:24],
                f"b{cell.bucket.label}",
            )
        )
        for index, n_texts in enumerate(split_even(cell.target, config.texts_per_request)):
            request_id = f"{prefix}-{index:04d}"
            persona = draw_persona(
                config.seed,
                request_id,
                state=cell.state,
                category=cell.category,
                testimonials=seeds.testimonials,
                n_anchors=config.testimonials_per_prompt,
            )
            prompt = user_prompt(
                language=cell.language,
                state=cell.state,
                category=category,
                bucket=cell.bucket,
                persona=persona,
                n_texts=n_texts,
            )
            planned = PlannedRequest(
                request_id, cell, n_texts, persona, message_params(config, prompt)
            )
            # Attempts run into the tens at most; check the longest id we could send.
            if not CUSTOM_ID_PATTERN.match(planned.custom_id(99)):
                raise ValueError(f"request id {request_id!r} cannot be a batch custom_id")
            requests.append(planned)
    return requests


@dataclass(frozen=True)
class Estimate:
    cells: int
    requests: int
    texts: int
    input_tokens: int
    output_tokens: int
    #: Output if every request used max_tokens: the hard ceiling of the bill.
    output_tokens_ceiling: int
    cost_usd: float
    cost_ceiling_usd: float


def estimate(config: GenerationConfig, plan: list[PlannedRequest]) -> Estimate:
    """Token and cost estimate without calling the API (characters and words per token)."""
    input_chars = sum(len(json.dumps(request.params, ensure_ascii=False)) for request in plan)
    input_tokens = math.ceil(input_chars / config.chars_per_token)
    # JSON quoting and separators cost a few tokens per text, the wrapper a few per answer.
    output_tokens = math.ceil(
        sum(
            request.n_texts * (request.cell.bucket.mean_words * config.tokens_per_word + 4) + 10
            for request in plan
        )
    )
    ceiling = len(plan) * config.max_tokens
    price = config.pricing
    per_input = price.input_per_mtok * price.batch_discount / 1e6
    per_output = price.output_per_mtok * price.batch_discount / 1e6
    return Estimate(
        cells=len({request.cell.key for request in plan}),
        requests=len(plan),
        texts=sum(request.n_texts for request in plan),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        output_tokens_ceiling=ceiling,
        cost_usd=input_tokens * per_input + output_tokens * per_output,
        cost_ceiling_usd=input_tokens * per_input + ceiling * per_output,
    )

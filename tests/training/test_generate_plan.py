"""Plan, personas, prompts and the dry-run estimate of the training-data generator."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from training.generate.config import DEFAULT_CATEGORIES, Bucket, GenerationConfig, RunOptions
from training.generate.plan import (
    CUSTOM_ID_PATTERN,
    build_cells,
    build_plan,
    estimate,
    split_by_share,
    split_even,
)
from training.generate.seeds import Seeds, load_seeds

NEGATIVE = "NEG-{i} me siento vacía"
POSITIVE = "POS-{i} me siento en paz"


def write_seeds(seed_dir: Path, categories: tuple[str, ...] = DEFAULT_CATEGORIES) -> Path:
    """Synthetic seed files of the real format (tests never depend on the shared copy)."""
    seed_dir.mkdir(parents=True, exist_ok=True)
    with (seed_dir / "mental_health_categories.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "negative_description", "positive_description"])
        for name in categories:
            writer.writerow([name, f"negative side of {name}", f"positive side of {name}"])
    with (seed_dir / "depression_resilience_testimonials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["negative_testimonial", "positive_testimonial", "category"])
        for i in range(12):
            category = categories[i % len(categories)]
            writer.writerow([NEGATIVE.format(i=i), POSITIVE.format(i=i), category])
    return seed_dir


@pytest.fixture
def seeds(tmp_path: Path) -> Seeds:
    return load_seeds(write_seeds(tmp_path / "seed"))


def test_default_plan_covers_every_cell_with_the_issue_shares(seeds: Seeds) -> None:
    config = GenerationConfig()
    plan = build_plan(config, seeds)

    cells = {request.cell.key for request in plan}
    assert len(cells) == 6 * 2 * 5 * 5
    texts_by_bucket = Counter()
    for request in plan:
        texts_by_bucket[request.cell.bucket.label] += request.n_texts
    total = sum(texts_by_bucket.values())
    assert total == 6 * 2 * 5 * 5 * config.texts_per_cell
    shares = {label: n / total for label, n in texts_by_bucket.items()}
    assert shares == pytest.approx(
        {"3-8": 0.2, "9-15": 0.1, "16-35": 0.4, "36-60": 0.2, "61-90": 0.1}
    )
    assert len(plan) == total // config.texts_per_request
    assert len({request.request_id for request in plan}) == len(plan)
    assert all(CUSTOM_ID_PATTERN.match(request.custom_id(3)) for request in plan)


def test_texts_per_cell_and_dimensions_are_configurable(seeds: Seeds) -> None:
    config = GenerationConfig(
        languages=("de",),
        states=("Unhealthy",),
        categories=("Social Impact",),
        buckets=(
            Bucket(min_words=5, max_words=10, share=0.25),
            Bucket(min_words=20, max_words=30, share=0.75),
        ),
        texts_per_cell=6,
        texts_per_request=4,
    )
    plan = build_plan(config, seeds)
    # 6 texts per cell on average × 2 buckets = 12, split 3/9; 9 → three requests of 3.
    assert [(r.cell.bucket.label, r.n_texts) for r in plan] == [
        ("5-10", 3),
        ("20-30", 3),
        ("20-30", 3),
        ("20-30", 3),
    ]
    assert {r.cell.language for r in plan} == {"de"}


def test_split_helpers_keep_totals() -> None:
    # 1.4, 0.7, 2.8, 1.4, 0.7: floors give 4, the largest remainders get the other 3.
    assert split_by_share(7, [0.2, 0.1, 0.4, 0.2, 0.1]) == [1, 1, 3, 1, 1]
    assert sum(split_by_share(1234, [0.2, 0.1, 0.4, 0.2, 0.1])) == 1234
    assert split_even(12, 5) == [4, 4, 4]
    assert split_even(11, 5) == [4, 4, 3]
    assert split_even(0, 5) == []


def test_personas_are_reproducible_and_vary(seeds: Seeds) -> None:
    first = build_plan(GenerationConfig(texts_per_cell=10), seeds)
    again = build_plan(GenerationConfig(texts_per_cell=10), seeds)
    other_seed = build_plan(GenerationConfig(texts_per_cell=10, seed=7), seeds)
    assert [r.persona for r in first] == [r.persona for r in again]
    assert [r.params for r in first] == [r.params for r in again]
    assert [r.persona for r in first] != [r.persona for r in other_seed]
    assert len({r.persona.age_group for r in first}) == 5
    assert len({r.persona.context for r in first}) == 7
    # A request keeps its persona when the plan around it changes.
    bigger = {
        r.request_id: r.persona for r in build_plan(GenerationConfig(texts_per_cell=20), seeds)
    }
    assert all(bigger[r.request_id] == r.persona for r in first)


def test_anchors_are_negative_for_unhealthy_and_positive_for_healthy(seeds: Seeds) -> None:
    plan = build_plan(GenerationConfig(texts_per_cell=5, testimonials_per_prompt=3), seeds)
    for request in plan:
        assert len(request.persona.anchors) == 3
        prefix = "NEG-" if request.cell.state == "Unhealthy" else "POS-"
        assert all(anchor.startswith(prefix) for anchor in request.persona.anchors)
        assert all(
            anchor in request.params["messages"][0]["content"] for anchor in request.persona.anchors
        )


def test_healthy_prompts_ask_for_the_normal_range_not_depression(seeds: Seeds) -> None:
    plan = build_plan(GenerationConfig(texts_per_cell=5), seeds)
    healthy = [r for r in plan if r.cell.state == "Healthy"]
    unhealthy = [r for r in plan if r.cell.state == "Unhealthy"]
    for request in healthy:
        prompt = request.params["messages"][0]["content"]
        for part in (
            "everyday life",
            "ordinary sadness",
            "stress",
            "anger",
            "grief",
            "setbacks",
            "resilience",
        ):
            assert part in prompt
        assert "Do not write about depression, suicide" in prompt
        assert "clinical depression indicators" not in prompt
        assert f"positive side of {request.cell.category}" in prompt
        assert request.persona.healthy_focus is not None
    for request in unhealthy:
        prompt = request.params["messages"][0]["content"]
        assert "clinical depression indicators" in prompt
        assert f"negative side of {request.cell.category}" in prompt
        assert "Do not write about depression" not in prompt
    # Healthy requests spread over the normal range instead of all leaning on one mood.
    assert len({r.persona.healthy_focus for r in healthy}) >= 6


def test_prompt_carries_language_length_persona_and_parameters(seeds: Seeds) -> None:
    config = GenerationConfig(
        languages=("pt",),
        states=("Unhealthy",),
        categories=("Self-Worth",),
        texts_per_cell=5,
        model="claude-test",
        temperature=0.7,
        max_tokens=1000,
    )
    request = build_plan(config, seeds)[-1]
    params = request.params
    prompt = params["messages"][0]["content"]
    assert f"Write {request.n_texts} different texts in Portuguese." in prompt
    assert "between 61 and 90 words" in prompt
    assert request.persona.writing_style in prompt and request.persona.context in prompt
    assert (params["model"], params["temperature"], params["max_tokens"]) == (
        "claude-test",
        0.7,
        1000,
    )
    assert params["output_config"]["format"]["type"] == "json_schema"
    no_schema = GenerationConfig(**{**config.model_dump(), "structured_output": False})
    assert "output_config" not in build_plan(no_schema, seeds)[-1].params


def test_estimate_counts_requests_tokens_and_cost(seeds: Seeds) -> None:
    config = GenerationConfig(texts_per_cell=10)
    plan = build_plan(config, seeds)
    result = estimate(config, plan)
    assert result.requests == len(plan) == 600
    assert result.texts == 3000
    assert result.cells == 300
    # Prompts are several hundred tokens each; answers average ~30 words × 1.6 per text.
    assert 300 * len(plan) < result.input_tokens < 1500 * len(plan)
    assert 3000 * 30 < result.output_tokens < 3000 * 80
    expected = result.input_tokens * 1.5 / 1e6 + result.output_tokens * 7.5 / 1e6
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_ceiling_usd > result.cost_usd


@pytest.mark.parametrize(
    "overrides",
    [
        {"languages": ("en", "nl")},
        {"states": ("Sad",)},
        {"buckets": (Bucket(min_words=1, max_words=5, share=0.5),)},
        {"languages": ("en", "en")},
    ],
)
def test_invalid_configs_are_configuration_errors(overrides: dict[str, object]) -> None:
    from depdetect.settings import AnthropicSettings

    with pytest.raises(ConfigurationError):
        GenerationConfig.from_settings(AnthropicSettings(), **overrides)


def test_unknown_category_and_missing_seed_files_say_how_to_fix(
    tmp_path: Path, seeds: Seeds
) -> None:
    with pytest.raises(ConfigurationError, match="Hope"):
        build_plan(GenerationConfig(categories=("Hope",)), seeds)
    with pytest.raises(ConfigurationError, match="SEED_DIR"):
        load_seeds(tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="max_requests_per_batch"):
        RunOptions(seed_dir=tmp_path, max_requests_per_batch=100_001)


def test_settings_supply_model_temperature_and_max_tokens() -> None:
    from depdetect.settings import AnthropicSettings

    config = GenerationConfig.from_settings(
        AnthropicSettings(model="claude-x", temperature=0.3, max_tokens=2048), texts_per_cell=None
    )
    assert (config.model, config.temperature, config.max_tokens) == ("claude-x", 0.3, 2048)
    assert config.texts_per_cell == 100
    assert build_cells(config)[0].target == 100  # 3-8 words: 20 % of 500

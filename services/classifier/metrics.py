"""Prometheus metrics of the classifier service, in a registry owned by the app."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter(
            "depdetect_consumed_total", "Records consumed", ["topic"], registry=r
        )
        self.classified = Counter(
            "depdetect_classified_total", "Texts classified", ["language"], registry=r
        )
        self.flagged = Counter(
            "depdetect_flagged_total", "Texts flagged for review", ["language"], registry=r
        )
        self.dead_lettered = Counter(
            "depdetect_dead_lettered_total", "Records dead-lettered", ["topic"], registry=r
        )
        self.reviews_published = Counter(
            "depdetect_review_events_total", "Review events published", registry=r
        )
        self.transient_errors = Counter(
            "depdetect_transient_errors_total",
            "Retried dependency failures",
            ["dependency"],
            registry=r,
        )
        self.retries = Counter(
            "depdetect_retries_total",
            "Attempts repeated after a transient failure",
            ["dependency"],
            registry=r,
        )
        self.failed_batches = Counter(
            "depdetect_failed_batches_total",
            "Batches that failed as a whole and were rewound for redelivery",
            ["fault"],
            registry=r,
        )
        self.redeliveries = Counter(
            "depdetect_redeliveries_total",
            "Records consumed again after their batch failed",
            registry=r,
        )
        self.isolated = Counter(
            "depdetect_isolated_records_total",
            "Records pinned as poison by isolation after validation (also dead-lettered)",
            ["stage"],
            registry=r,
        )
        self.outbox_oldest_seconds = Gauge(
            "depdetect_outbox_oldest_unpublished_seconds",
            "Age of the oldest flagged row whose review event is not yet on the broker",
            registry=r,
        )
        self.stalled = Gauge(
            "depdetect_stalled",
            "1 while records wait and no batch has committed for longer than the stall limit",
            registry=r,
        )
        self.batch_size = Histogram(
            "depdetect_batch_size",
            "Records per consumed batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "depdetect_inference_seconds",
            "Model time per batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "depdetect_end_to_end_seconds",
            "From the record's broker timestamp to its result being written",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "depdetect_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "depdetect_model_loaded",
            "1 when the model bundle is loaded",
            ["model_version"],
            registry=r,
        )


def scrape_totals(url: str, *, timeout_s: float = 3.0) -> dict[str, float]:
    """Fetch a Prometheus ``/metrics`` page and sum each sample over its labels,
    e.g. ``{"depdetect_consumed_total": 51.0, …}`` (the demo's summary, the tests)."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        text = response.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return dict(totals)

"""Shared fixtures. Integration tests talk to the real broker and the real database.

- Kafka: ``DEPDETECT_TEST_KAFKA`` (default 127.0.0.1:9092). `.ci/run` starts it; locally
  run `depdetect broker start`. Tests never skip when it is missing: they fail, saying so.
- PostgreSQL: ``DEPDETECT_TEST_POSTGRES_URL`` (default the local cluster of
  `deploy/postgres/postgres.sh`). Each test session gets a fresh database.
Topics get a unique suffix per test so that runs never see each other's messages.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from depdetect.settings import REPO_ROOT, KafkaSettings, Settings
from tests.support.databases import temporary_database

KAFKA = os.environ.get("DEPDETECT_TEST_KAFKA", "127.0.0.1:9092")
POSTGRES = os.environ.get(
    "DEPDETECT_TEST_POSTGRES_URL",
    "postgresql+psycopg://depdetect:depdetect@127.0.0.1:55432/depdetect",
)


def _reachable(hostport: str) -> bool:
    host, port = hostport.split(",")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    if not _reachable(KAFKA):
        pytest.fail(
            f"Kafka is not reachable at {KAFKA}: start it with `depdetect broker start` "
            "or set DEPDETECT_TEST_KAFKA",
            pytrace=False,
        )
    return KAFKA


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, unique: str) -> KafkaSettings:
    """Kafka settings whose topics and group exist for this test alone."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        input_topics=[f"t-{unique}.submitted"],
        review_topic=f"t-{unique}.review",
        dead_letter_topic=f"t-{unique}.dlq",
        decision_topic=f"t-{unique}.decisions",
        consumer_group=f"g-{unique}",
        partitions=3,
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    admin_url = make_url(POSTGRES)
    host = f"{admin_url.host or '127.0.0.1'}:{admin_url.port or 5432}"
    if not _reachable(host):
        pytest.fail(
            f"PostgreSQL is not reachable at {host}: start it with "
            "`deploy/postgres/postgres.sh start` or set DEPDETECT_TEST_POSTGRES_URL",
            pytrace=False,
        )
    with temporary_database(admin_url, f"depdetect_t_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database of this test's own on the real PostgreSQL, dropped afterwards."""
    url = make_url(postgres_url)
    with temporary_database(url, f"{url.database}_{uuid.uuid4().hex[:6]}") as fresh:
        yield fresh


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'depdetect.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def make_settings(kafka_settings: KafkaSettings, sqlite_url: str) -> Callable[..., Settings]:
    """Build a Settings for a test; keyword groups override (e.g. database={'url': …})."""

    def factory(**groups: object) -> Settings:
        values: dict[str, object] = {"kafka": kafka_settings, "database": {"url": sqlite_url}}
        values.update(groups)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg,arg-type]

    return factory


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle from the real training chain (tiny random encoder, a few steps), built in a
    subprocess so that the service under test runs without torch in its process."""
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from training.pipeline import build_tiny_bundle;"
            "build_tiny_bundle(Path(sys.argv[1]))",
            str(out),
        ],
        check=True,
        cwd=REPO_ROOT,
    )
    return out


@pytest.fixture(scope="session")
def tiny_threshold(tiny_bundle: Path) -> float:
    """The median score of the test texts, so that about half are flagged: a random tiny
    model is not accurate, and these tests are about delivery, not accuracy."""
    from services.inference.runner import ModelRunner
    from tests.service.texts import stream

    scores = sorted(
        s.score for s in ModelRunner.from_bundle(tiny_bundle).score([t for _, t in stream(300)])
    )
    return scores[len(scores) // 2]

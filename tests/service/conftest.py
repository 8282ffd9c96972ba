"""Fixtures for the service tests: a tiny bundle made by the training pipeline, and a
private PostgreSQL that a test may stop and start."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from depdetect.settings import REPO_ROOT, Settings, StoreUnflagged
from tests.service.harness import free_port
from tests.support.kafka_cluster import free_port_block

POSTGRES_SH = REPO_ROOT / "deploy" / "postgres" / "postgres.sh"


@pytest.fixture
def service_settings(
    make_settings: Callable[..., Settings], tiny_bundle: Path, tiny_threshold: float
) -> Callable[..., Settings]:
    """Settings for a running service: the tiny model at its threshold, and unflagged scores
    stored so that every text leaves a row to count. Keyword groups override, as in
    ``make_settings``; the database is ``url``, else the test's SQLite file."""

    def factory(url: str | None = None, **groups: object) -> Settings:
        values: dict[str, object] = {
            "model": {"bundle_path": tiny_bundle, "threshold": tiny_threshold},
            "storage": {"store_unflagged": StoreUnflagged.SCORE},
        }
        if url is not None:
            values["database"] = {"url": url}
        values.update(groups)
        return make_settings(**values)

    return factory


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """A throwaway PostgreSQL cluster; call it with "stop" or "start"."""
    env = {
        **os.environ,
        "DEPDETECT_PG_STATE_DIR": str(tmp_path / "pg"),
        "DEPDETECT_PG_PORT": str(free_port()),
    }

    def control(action: str) -> None:
        subprocess.run(["bash", str(POSTGRES_SH), action], env=env, check=True)

    control("start")
    control.url = subprocess.run(  # type: ignore[attr-defined]
        ["bash", str(POSTGRES_SH), "url"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    yield control
    subprocess.run(["bash", str(POSTGRES_SH), "stop"], env=env, check=False)


@pytest.fixture
def private_postgres_url(private_postgres: Callable[[str], None]) -> str:
    return str(private_postgres.url)  # type: ignore[attr-defined]


KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A throwaway single-node broker; call it with "start", "wait", "kill" or "bootstrap"."""
    env = {
        **os.environ,
        "DEPDETECT_KAFKA_STATE_DIR": str(tmp_path / "kafka"),
        # Two ports: the node's client port and the controller's, the next one up (a
        # single free port let the controller's collide with a connection's ephemeral port).
        "DEPDETECT_KAFKA_PORT": str(free_port_block(2)),
    }

    def control(*args: str) -> str:
        done = subprocess.run(
            ["bash", str(KAFKA_SH), *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"kafka.sh {' '.join(args)}: {done.stderr.strip()}"
        return done.stdout.strip()

    control("start", "--nodes", "1")
    control("wait", "120")
    yield control
    subprocess.run(["bash", str(KAFKA_SH), "kill"], env=env, check=False, capture_output=True)

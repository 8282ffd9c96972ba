"""Fixtures for the results API tests: a migrated PostgreSQL, tokens, rows, a client.

Each test gets a database of its own, copied from one migrated template.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from depdetect.cli import api as api_cli
from depdetect.cli import feedback as feedback_cli
from depdetect.cli import results as results_cli
from depdetect.cli import tokens as tokens_cli
from depdetect.settings import DatabaseSettings, KafkaSettings, Settings
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.api.app import create_app
from services.api.outbox.sink import DecisionSink
from services.api.security.tokens import Role, create_token
from services.kafka.admin import ensure_topics
from services.results_query.database import make_engine, make_sessions
from tests.api.support import T0, RecordingSink
from tests.support.databases import temporary_database


@pytest.fixture(scope="session")
def api_template(postgres_url: str) -> str:
    """The session's database, migrated once and then only copied (CREATE DATABASE … TEMPLATE)."""
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def api_database(api_template: str, unique: str) -> Iterator[str]:
    """A migrated database of this test's own: the outbox relay publishes every pending
    decision in its database, so tests sharing one would publish each other's events."""
    template = make_url(api_template)
    # Copying a template needs a connection to another database than the template.
    with temporary_database(
        template.set(database="postgres"), f"{template.database}_{unique}", template.database
    ) as url:
        yield url


@pytest.fixture
def sessions(api_database: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(DatabaseSettings(url=api_database))
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture
def tag(unique: str) -> str:
    return unique


@pytest.fixture
def settings(api_database: str, unique: str) -> Settings:
    """No broker here: the app gets a recording sink (``client``) unless a test asks for
    Kafka (``kafka_client``); the topic name is the test's own all the same."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database=DatabaseSettings(url=api_database),
        kafka=KafkaSettings(decision_topic=f"t-{unique}.decisions"),
    )


@pytest.fixture
def insert_result(sessions: sessionmaker[Session], tag: str) -> Callable[..., int]:
    """Insert a result row the way the classifier would; returns its id."""
    counter = iter(range(1_000_000))

    def insert(**values: Any) -> int:
        n = next(counter)
        score = values.pop("score", 0.9)
        threshold = values.pop("threshold", 0.5)
        flagged = score >= threshold
        row = ResultRow(
            message_id=values.pop("message_id", f"m-{tag}-{n}"),
            score=score,
            threshold=threshold,
            label="indicators" if flagged else "no_indicators",
            flagged=flagged,
            model_version=values.pop("model_version", f"model-{tag}"),
            language=values.pop("language", "en"),
            language_detected=False,
            source=values.pop("source", f"src-{tag}"),
            author_ref=values.pop("author_ref", None),
            text=values.pop("text", f"text {n} of {tag}" if flagged else None),
            submitted_at=values.pop("submitted_at", T0 + timedelta(minutes=n)),
            classified_at=values.pop("classified_at", T0 + timedelta(minutes=n)),
            review_status=values.pop("review_status", "pending" if flagged else None),
            **values,
        )
        with sessions.begin() as session:
            session.add(row)
        return row.id

    return insert


@pytest.fixture
def token_for(sessions: sessionmaker[Session], tag: str) -> Callable[[Role], dict[str, str]]:
    """Authorization headers of a fresh token with the given role."""

    def make(role: Role, name: str | None = None) -> dict[str, str]:
        with sessions.begin() as session:
            issued = create_token(session=session, name=name or f"{role.value}-{tag}", role=role)
        return {"Authorization": f"Bearer {issued.secret}"}

    return make


@pytest.fixture
def moderator(token_for: Callable[[Role], dict[str, str]]) -> dict[str, str]:
    return token_for(Role.MODERATOR)


@pytest.fixture
def analyst(token_for: Callable[[Role], dict[str, str]]) -> dict[str, str]:
    return token_for(Role.ANALYST)


@pytest.fixture
def admin(token_for: Callable[[Role], dict[str, str]]) -> dict[str, str]:
    return token_for(Role.ADMIN)


@pytest.fixture
def app_client_factory(settings: Settings) -> Callable[..., Any]:
    """Runs the app's lifespan (relay included) around an httpx client."""

    def factory(*, sink: DecisionSink | None = None, app_settings: Settings | None = None) -> Any:
        app = create_app(app_settings or settings, decision_sink=sink, relay_interval_s=0.2)

        class _Client:
            async def __aenter__(self) -> httpx.AsyncClient:
                self._lifespan = app.router.lifespan_context(app)
                await self._lifespan.__aenter__()
                self._client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://api.test"
                )
                return self._client

            async def __aexit__(self, *exc: object) -> None:
                await self._client.aclose()
                await self._lifespan.__aexit__(None, None, None)

        return _Client()

    return factory


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def client(
    app_client_factory: Callable[..., Any], sink: RecordingSink
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client_factory(sink=sink) as c:
        yield c


@pytest.fixture
async def kafka_app_settings(settings: Settings, kafka_settings: KafkaSettings) -> Settings:
    """The test's settings with the real broker and a decision topic of the test's own."""
    await ensure_topics(kafka_settings, [kafka_settings.decision_topic])
    return settings.model_copy(update={"kafka": kafka_settings})


@pytest.fixture
async def kafka_client(
    app_client_factory: Callable[..., Any], kafka_app_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose relay publishes to the real broker."""
    async with app_client_factory(app_settings=kafka_app_settings) as c:
        yield c


@pytest.fixture
def cli(settings: Settings) -> typer.Typer:
    """The command groups of this package on a root that takes the test's settings
    (`depdetect.cli.main` wires the same modules under the same names)."""
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = settings

    root.add_typer(results_cli.app, name="results")
    root.add_typer(tokens_cli.app, name="tokens")
    root.add_typer(feedback_cli.app, name="feedback")
    root.add_typer(api_cli.app, name="api")
    return root

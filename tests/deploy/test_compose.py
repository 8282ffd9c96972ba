"""compose.yaml and the container images, checked without a Docker engine.

The file is parsed with PyYAML (anchors and merge keys resolved, `${VAR:-default}`
interpolated with its defaults, as `docker compose` does with an empty environment)
and checked for services, images, builds, ports, dependencies and health checks,
and above all against the settings object: every DEPDETECT_* variable must name a
real field of depdetect.settings.Settings, and each service's environment must load
into the values the deployment needs.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url

from depdetect.settings import ENV_PREFIX, Settings
from services.kafka.admin import TopicLayout

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKER_DIR = ROOT / "deploy" / "docker"
SERVING_DOCKERFILE = DOCKER_DIR / "serving.Dockerfile"
TRAINING_DOCKERFILE = DOCKER_DIR / "training.Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"kafka", "postgres", "migrate", "topics", "classifier", "api"}
DEPDETECT_SERVICES = ("migrate", "topics", "classifier", "api")
SERVING_DOCKERFILE_REL = "deploy/docker/serving.Dockerfile"
EACH_DOCKERFILE = pytest.mark.parametrize(
    "dockerfile", [SERVING_DOCKERFILE, TRAINING_DOCKERFILE], ids=lambda p: p.name
)

_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
)
_DEPDETECT_NAME = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+")


# --------------------------------------------------------------------------- helpers


def _interpolate(value: Any) -> Any:
    """Resolve ${VAR:-default} / ${VAR-default} with an empty environment ($$ is a $)."""
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("op") is None:
            raise AssertionError(
                f"${{{match.group('name')}}} has no default: compose.yaml must work as is"
            )
        return match.group("default")

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def raw_text() -> str:
    return COMPOSE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(raw_text: str) -> dict[str, Any]:
    document = yaml.safe_load(raw_text)
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return _interpolate(document)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings (mapping or KEY=VALUE list form)."""
    env = service.get("environment") or {}
    pairs = dict(item.split("=", 1) for item in env) if isinstance(env, list) else dict(env)
    result = {}
    for key, value in pairs.items():
        # YAML booleans would reach the container as "True"/"False" or be refused.
        assert not isinstance(value, bool), f"{key}: quote booleans in compose environment"
        assert value is not None, f"{key}: no value"
        result[key] = str(value)
    return result


def _setting_field(name: str) -> FieldInfo:
    """DEPDETECT_A__B -> Settings.model_fields['a'] -> its model's model_fields['b']."""
    assert name.startswith(ENV_PREFIX), name
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    model: type[BaseModel] = Settings
    field: FieldInfo | None = None
    for depth, part in enumerate(parts):
        assert part, f"{name}: empty segment"
        fields = model.model_fields
        assert part in fields, (
            f"{name}: {model.__name__} has no field {part!r} (fields: {sorted(fields)})"
        )
        field = fields[part]
        if depth < len(parts) - 1:
            nested = _model_of(field.annotation)
            assert nested is not None, f"{name}: {model.__name__}.{part} is not a settings group"
            model = nested
    assert field is not None
    assert _model_of(field.annotation) is None, f"{name} names a whole group, not a field"
    return field


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _model_of(a)) is not None]
        return models[0] if len(models) == 1 else None
    return None


def _setting_value(settings: Settings, name: str) -> Any:
    value: Any = settings
    for part in name[len(ENV_PREFIX) :].lower().split("__"):
        value = getattr(value, part)
    return value


@pytest.fixture
def load_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Build Settings from exactly the given variables (no other DEPDETECT_*, no .env)."""

    def load(env: dict[str, str]) -> Settings:
        for key in list(os.environ):
            if key.startswith(ENV_PREFIX):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        return Settings(_env_file=None)  # type: ignore[call-arg]

    return load


def _ports(service: dict[str, Any]) -> list[tuple[str | None, int, int]]:
    """(host ip, host port, container port) for each published port."""
    published = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published.append((entry.get("host_ip"), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"publish {entry!r} with an explicit host port"
        host_ip = parts[0] if len(parts) == 3 else None
        published.append((host_ip, int(parts[-2]), int(parts[-1])))
    return published


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name}: dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _copy_sources(path: Path) -> list[str]:
    sources = []
    for instruction, args in _dockerfile_instructions(path):
        if instruction not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue  # from another stage, not the build context
        words = [w for w in words if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


def _dockerignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line.strip("/"))
    return patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue  # no exceptions are used here
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(Path(prefix).name, bare):
                return True
    return False


# ------------------------------------------------------------------ services, images


def test_services_present(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES, f"missing: {sorted(SERVICES - set(services))}"


def test_images(services: dict[str, dict[str, Any]]) -> None:
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", services["kafka"]["image"])
    assert re.fullmatch(r"postgres:1[67](\.\d+)?(-\w+)?", services["postgres"]["image"])


def test_depdetect_services_build_the_serving_image(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for name in DEPDETECT_SERVICES:
        service = services[name]
        build = service.get("build")
        assert isinstance(build, dict), f"{name}: no build section"
        assert build.get("dockerfile") == SERVING_DOCKERFILE_REL, name
        assert (ROOT / build.get("context", ".")).resolve() == ROOT, name
        images.add(service.get("image"))
    # One tag: compose builds it once and every service runs the same code.
    assert len(images) == 1 and None not in images, images


def test_commands_are_real_cli_commands(services: dict[str, dict[str, Any]]) -> None:
    from depdetect.cli.main import app

    expected = {
        "migrate": ["db", "migrate"],
        "topics": ["broker", "topics"],
        "classifier": ["serve"],
        "api": ["api", "serve"],
    }
    root = typer.main.get_command(app)
    for name, words in expected.items():
        command = services[name]["command"]
        if isinstance(command, str):
            command = shlex.split(command)
        assert command[: len(words)] == words, f"{name}: {command}"
        node: Any = root
        for word in words:
            assert hasattr(node, "commands"), f"{name}: {word!r} under a plain command"
            assert word in node.commands, f"{name}: `depdetect {' '.join(words)}` does not exist"
            node = node.commands[word]
        options = {opt for param in node.params for opt in getattr(param, "opts", [])}
        for extra in command[len(words) :]:
            if extra.startswith("--"):
                assert extra.split("=")[0] in options, f"{name}: unknown option {extra}"


# ------------------------------------------------------------------ ports, dependencies


def test_published_ports(services: dict[str, dict[str, Any]]) -> None:
    api_env = _environment(services["api"])
    api_port = int(api_env["DEPDETECT_API__PORT"])
    assert api_port == 8000
    assert (None, 8000, api_port) in _ports(services["api"])
    command = services["api"]["command"]
    assert command[command.index("--port") + 1] == str(api_port)
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # Replicas cannot share a fixed host port.
    assert not services["classifier"].get("ports")
    # Kafka's host listener is advertised on the port it is published on.
    kafka_env = _environment(services["kafka"])
    advertised = dict(
        item.split("://", 1) for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    host_port = int(advertised["HOST"].rsplit(":", 1)[1])
    assert any(p[1] == host_port == p[2] for p in _ports(services["kafka"]))
    assert advertised["PLAINTEXT"] == "kafka:9092"


def test_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    healthy, done = "service_healthy", "service_completed_successfully"
    expected = {
        "migrate": {"postgres": healthy},
        "topics": {"kafka": healthy},
        "classifier": {"kafka": healthy, "postgres": healthy, "migrate": done, "topics": done},
        "api": {"postgres": healthy, "migrate": done},
    }
    for name, wanted in expected.items():
        depends = services[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dependency, condition in wanted.items():
            assert dependency in depends, f"{name} must wait for {dependency}"
            assert depends[dependency].get("condition") == condition, (name, dependency)
    for name in ("migrate", "topics"):
        assert services[name].get("restart", "no") == "no", f"{name} is one-shot"
        assert "deploy" not in services[name]


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "postgres", "classifier", "api"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        assert not check.get("disable"), name
    assert "pg_isready" in _healthcheck_text(services["postgres"])
    assert "kafka:9092" in _healthcheck_text(services["kafka"])

    classifier_env = _environment(services["classifier"])
    health_port = classifier_env["DEPDETECT_SERVICE__HEALTH_PORT"]
    assert f":{health_port}/health" in _healthcheck_text(services["classifier"])

    # The API has no open endpoint: its check must hit a real route on its port.
    api_check = _healthcheck_text(services["api"])
    routes = json.loads((ROOT / "services" / "api" / "openapi.json").read_text())["paths"]
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[^\"' ]*)", api_check)
    assert match, api_check
    assert match.group(1) == _environment(services["api"])["DEPDETECT_API__PORT"]
    assert match.group(2) in routes


def test_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    assert "/var/lib/kafka/data" in {v.split(":")[1] for v in services["kafka"]["volumes"]}
    assert _environment(services["kafka"])["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "/var/lib/postgresql/data" in {v.split(":")[1] for v in services["postgres"]["volumes"]}
    for name in ("kafka", "postgres"):
        for volume in services[name]["volumes"]:
            assert volume.split(":")[0] in declared, f"{name}: undeclared volume {volume}"


def test_bundle_is_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    bundle_path = _environment(services["classifier"])["DEPDETECT_MODEL__BUNDLE_PATH"]
    mounts = [v for v in services["classifier"]["volumes"] if isinstance(v, dict)]
    bundle = [m for m in mounts if m.get("target") == bundle_path]
    assert len(bundle) == 1, f"nothing mounted at {bundle_path}"
    assert bundle[0].get("read_only") is True
    assert bundle[0]["type"] in ("bind", "volume")
    if bundle[0]["type"] == "bind":
        assert bundle[0]["source"] == "./var/bundle"  # the default, without BUNDLE_DIR


def test_replicas_equal_partitions(services: dict[str, dict[str, Any]], load_env: Any) -> None:
    replicas = services["classifier"]["deploy"]["replicas"]
    topics_env = _environment(services["topics"])
    partitions = load_env(topics_env).kafka.partitions
    assert replicas == partitions == int(topics_env["DEPDETECT_KAFKA__PARTITIONS"])
    assert partitions >= 1
    # The classifiers see the same count, and so does the broker's default.
    assert load_env(_environment(services["classifier"])).kafka.partitions == partitions
    assert int(_environment(services["kafka"])["KAFKA_NUM_PARTITIONS"]) == partitions
    # A topic replicated more than the single broker holds could not be created: the
    # replication follows the cluster, and on compose's one broker that is 1 (min ISR 1).
    layout = TopicLayout.for_cluster(load_env(topics_env).kafka, brokers=1)
    assert (layout.replication_factor, layout.min_insync_replicas) == (1, 1)
    classifier = load_env(_environment(services["classifier"])).kafka
    assert TopicLayout.for_cluster(classifier, brokers=1) == layout, "the check agrees"


# ------------------------------------------------------------------ settings


def _all_depdetect_names(raw_text: str) -> set[str]:
    names = set(_DEPDETECT_NAME.findall(raw_text))
    for dockerfile in (SERVING_DOCKERFILE, TRAINING_DOCKERFILE):
        names |= set(_DEPDETECT_NAME.findall(dockerfile.read_text(encoding="utf-8")))
    return names


def test_every_depdetect_variable_is_a_setting(
    raw_text: str, services: dict[str, dict[str, Any]]
) -> None:
    names = _all_depdetect_names(raw_text)
    for service in services.values():
        names |= {k for k in _environment(service) if k.startswith(ENV_PREFIX)}
    assert len(names) >= 8, sorted(names)  # the scan found them
    for name in sorted(names):
        _setting_field(name)


def test_setting_walker_rejects_unknown_names() -> None:
    assert _setting_field("DEPDETECT_KAFKA__BOOTSTRAP_SERVERS").annotation is str
    for wrong in (
        "DEPDETECT_KAFKA_BOOTSTRAP_SERVERS",  # single underscore: not nested
        "DEPDETECT_KAFKA__BOOTSTRAP",
        "DEPDETECT_KAFKA",  # a group, not a value
        "DEPDETECT_LOG_LEVEL__X",
    ):
        with pytest.raises(AssertionError):
            _setting_field(wrong)


@pytest.mark.parametrize("name", DEPDETECT_SERVICES)
def test_service_environment_loads_into_settings(
    name: str, services: dict[str, dict[str, Any]], load_env: Any
) -> None:
    env = _environment(services[name])
    settings = load_env(env)

    # Every variable was read (not left at its default) with the value it gives.
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        field = _setting_field(key)
        expected = TypeAdapter(field.annotation).validate_python(raw)
        assert _setting_value(settings, key) == expected, key

    assert settings.kafka.bootstrap_servers == "kafka:9092"
    url = make_url(settings.database.url)
    postgres = _environment(services["postgres"])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres["POSTGRES_DB"]
    # The migrate service owns the schema; nothing else races to upgrade it.
    assert settings.database.auto_migrate is False

    if name == "classifier":
        assert settings.model.bundle_path == Path("/bundle")
        assert settings.service.health_host == "0.0.0.0"
        assert settings.service.health_port == 8081
    if name == "api":
        assert (settings.api.host, settings.api.port) == ("0.0.0.0", 8000)
        assert settings.api.public_url.startswith("http://localhost:8000")


# ------------------------------------------------------------------ images


def test_dockerfiles_exist() -> None:
    assert SERVING_DOCKERFILE.is_file()
    assert TRAINING_DOCKERFILE.is_file()
    assert DOCKERIGNORE.is_file()


def _locked_installs(path: Path) -> list[str]:
    """The image's Python installs: `uv sync --frozen` from uv.lock, nothing resolved anew."""
    return [
        args
        for instruction, args in _dockerfile_instructions(path)
        if instruction == "RUN" and "uv sync" in args
    ]


def test_serving_image_installs_serving_extra_without_torch() -> None:
    text = SERVING_DOCKERFILE.read_text(encoding="utf-8")
    instructions = _dockerfile_instructions(SERVING_DOCKERFILE)
    # What the build does (comments may say what it leaves out).
    steps = "\n".join(f"{instruction} {args}" for instruction, args in instructions)
    installs = " ".join(_locked_installs(SERVING_DOCKERFILE))
    assert "--frozen" in installs and "--extra serving" in installs, installs
    assert "torch" not in steps.lower()
    # The `training` package ships in the wheel as plain Python; its extra must not.
    assert "--extra training" not in steps and "--all-extras" not in steps
    assert "--extra dev" not in steps
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text or all(
        f.startswith("python:3.11-slim") for f in froms
    )
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["depdetect"]


def test_training_image_installs_training_extra() -> None:
    installs = " ".join(_locked_installs(TRAINING_DOCKERFILE))
    assert "--frozen" in installs and "--extra training" in installs, installs
    text = TRAINING_DOCKERFILE.read_text(encoding="utf-8")
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    assert 'name = "torch"' in lock  # torch comes pinned from the lock
    assert "nvidia/cuda" in text  # the GPU route is documented


@EACH_DOCKERFILE
def test_images_run_as_non_root(dockerfile: Path) -> None:
    users = [
        args for instruction, args in _dockerfile_instructions(dockerfile) if instruction == "USER"
    ]
    assert users, f"{dockerfile.name}: no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


@EACH_DOCKERFILE
def test_copied_paths_exist_and_are_in_the_context(dockerfile: Path) -> None:
    sources = _copy_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing"
    patterns = _dockerignore_patterns()
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: not in the repo"
        assert not _ignored(source, patterns), f"{dockerfile.name}: {source} is .dockerignored"


@EACH_DOCKERFILE
def test_images_copy_what_the_wheel_needs(dockerfile: Path) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {s.rstrip("/") for s in _copy_sources(dockerfile)}
    needed = {"pyproject.toml", pyproject["project"]["readme"], *packages}
    assert needed <= copied, f"{dockerfile.name} misses {sorted(needed - copied)}"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _dockerignore_patterns()
    for path in (".venv", "var", ".cache", ".git", ".pytest_cache", "depdetect/__pycache__"):
        assert _ignored(path, patterns), path
    assert not _ignored("depdetect/settings.py", patterns)

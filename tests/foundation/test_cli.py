"""The `depdetect` command: groups are listed, and the commands that exist work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from depdetect.cli.main import app

runner = CliRunner()


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("publish", "broker", "db", "schemas", "config"):
        assert group in result.output


def test_db_migrate_twice_reports_noop(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEPDETECT_DATABASE__URL", f"sqlite:///{tmp_path / 'x.db'}")
    first = runner.invoke(app, ["db", "migrate"])
    second = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert "upgraded from empty" in first.output
    assert "already at" in second.output


def test_schemas_validate_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"message_id": "m", "text": ""}))
    result = runner.invoke(app, ["schemas", "validate", "submitted_text", str(bad)])
    assert result.exit_code == 1
    assert "text: text is empty" in result.output


def test_publish_refuses_invalid_input_before_touching_the_broker(tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": ""}\n')
    result = runner.invoke(app, ["publish", str(bad)])
    assert result.exit_code == 1
    assert "record 2" in result.output


def test_config_prints_json_without_secrets(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEPDETECT_ANTHROPIC__API_KEY", "sk-top-secret")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0
    assert json.loads(result.output)["kafka"]["bootstrap_servers"]
    assert "sk-top-secret" not in result.output


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "depdetect"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "broker" in out.stdout


def test_serve_workers_share_the_cores_between_them(tiny_bundle: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`serve --workers N` hands the forked workers 1/N of the cores each (unless threads
    are set): N processes that each took every core would fight over them."""
    import os

    from services.inference.runner import usable_cores

    execs: list[list[str]] = []

    def execv(path: str, argv: list[str]) -> None:
        execs.append(argv)
        raise SystemExit(0)  # the real one never returns

    monkeypatch.delenv("DEPDETECT_MODEL__INTRA_OP_THREADS", raising=False)
    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert usable_cores() == 4
    result = runner.invoke(app, ["serve", "--bundle", str(tiny_bundle), "--workers", "2"])
    assert execs and execs[0][execs[0].index("--workers") + 1] == "2", result.output
    assert os.environ["DEPDETECT_MODEL__INTRA_OP_THREADS"] == "2"
    monkeypatch.delenv("DEPDETECT_MODEL__INTRA_OP_THREADS")

"""Every command's help reads in an 80-column terminal and when piped; every failure is
one line saying what to do, with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from depdetect.cli.main import app

DEPDETECT = str(Path(sys.executable).parent / "depdetect")


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        # typer may bring its own click: a group is whatever has sub-commands.
        if isinstance(getattr(command, "commands", None), dict):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # Piped (not a terminal), 80 columns: what a user sees in `... | less` or a log.
    return subprocess.run(
        [DEPDETECT, *args],
        capture_output=True,
        text=True,
        timeout=240,  # importing torch on a busy 2-core machine takes a while
        check=False,
        env={**os.environ, "COLUMNS": "80", "DEPDETECT_LOG_LEVEL": "INFO", **env},
    )


def test_the_walk_finds_every_group() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"", "train", "train generate", "results", "serve", "evaluate"} <= names


def test_help_fits_80_columns_and_truncates_nothing() -> None:
    # In-process (one subprocess per command would take minutes); the output is not a
    # terminal, as when piped.
    runner = CliRunner()
    for path in _command_paths():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        where = f"depdetect {' '.join(path)} --help"
        assert result.exit_code == 0, f"{where}: {result.output}"
        assert "Usage:" in result.output, where
        for line in result.output.splitlines():
            assert len(line) <= 80, f"{where}: line of {len(line)} columns: {line!r}"
            assert "…" not in line, f"{where}: truncated: {line!r}"
            cut = line.rstrip().endswith("...") and not line.startswith("Usage:")
            assert not cut, f"{where}: a command's description is cut: {line!r}"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["evaluate", "--model", "/nonexistent/bundle", "--data", "/nonexistent.csv"], {}, ""),
        (
            ["results", "list"],
            {"DEPDETECT_DATABASE__URL": "postgresql://u:secret-pw@127.0.0.1:1/none"},
            "DEPDETECT_DATABASE__URL",
        ),
        (["serve"], {"DEPDETECT_MODEL__BUNDLE_PATH": "/nonexistent/bundle"}, "bundle"),
        (["publish", "/nonexistent/texts.csv"], {}, "nonexistent"),
        (["train", "export", "--model-dir", "/nonexistent/model"], {}, "nonexistent"),
    ],
)
def test_a_failing_command_prints_one_line_and_exits_non_zero(
    args: list[str], env: dict[str, str], says: str
) -> None:
    result = _run(args, **env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"depdetect {' '.join(args)}:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert says in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "secret-pw" not in result.stderr + result.stdout

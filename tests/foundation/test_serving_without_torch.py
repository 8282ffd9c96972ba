"""The serving path (consumer, model runner, database writer) never needs torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from depdetect.settings import REPO_ROOT

BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {"torch", "transformers", "optimum", "datasets", "sklearn", "pandas", "anthropic"}

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not part of the serving install")
        return None

sys.meta_path.insert(0, Block())
"""

CHECK = """
import sys
from services.classifier.app import create_app
from services.inference.runner import ModelRunner
from services.api import app as _api  # noqa: F401  (the results API is serving too)
from depdetect.cli.main import app as cli
create_app()
scores = ModelRunner.from_bundle(sys.argv[1]).score(["Ich fühle mich leer.", "What a lovely day"])
assert all(0.0 <= s.score <= 1.0 for s in scores), scores
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("ok")
"""


def test_service_imports_and_scores_with_torch_blocked(tiny_bundle: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + CHECK, str(tiny_bundle)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"

"""The benchmark script stays runnable: it imports and parses its options (the run itself takes
minutes and measures, so it is not a test; README "Performance")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_script_starts_and_documents_its_options() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.pipeline", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--rounds", "--load-rounds", "--memory-rounds"):
        assert option in result.stdout

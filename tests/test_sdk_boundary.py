"""The store and the analysts' side never import the SDK: opening a warehouse must not pay for openai."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SDK_MODULES = ("openai", "tenacity", "httpx2")
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["panel.warehouse", "panel.store", "panel.answers", "panel.tally"])
def test_data_side_imports_no_sdk(module: str) -> None:
    # A fresh interpreter: this test process has long since imported the SDK.
    probe = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SDK_MODULES!r})))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []

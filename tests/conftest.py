"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The benchmark files live next to the repository: <repo>/../shared/data (see its README.md).
_DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Directory with the shared benchmark files ($BERRY_DATA_DIR or ../shared/data).

    Tests using it should be marked ``@pytest.mark.data``; they are skipped when it is absent.
    """
    env = os.environ.get("BERRY_DATA_DIR", "").strip()
    path = Path(env) if env else _DEFAULT_SHARED_DATA
    if not (path / "gsm8k_test.jsonl").is_file():
        pytest.skip(f"shared benchmark files not found in {path} (set BERRY_DATA_DIR)")
    return path

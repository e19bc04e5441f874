"""What several test modules share: the `pvloom` binary they run as a peer process."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def _newest_pvloom():
    """$PVLOOM_BIN, else the newest debug `pvloom` of the cargo target dirs in use
    (`$CARGO_TARGET_DIR`, its per-worktree `-wt-<name>` variant, `target/`) or on PATH."""
    if os.environ.get("PVLOOM_BIN"):
        return os.environ["PVLOOM_BIN"]
    candidates = [str(REPO / "target" / "debug" / "pvloom"), shutil.which("pvloom")]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates += [os.path.join(target, "debug", "pvloom"), f"{target}-wt-{REPO.name.removeprefix('wt-')}/debug/pvloom"]
    found = [c for c in candidates if c and os.access(c, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


@pytest.fixture(scope="session")
def pvloom_bin():
    """The `pvloom` binary; missing is a failure (./test.sh builds it first)."""
    binary = _newest_pvloom()
    if not binary:
        pytest.fail("no pvloom binary: cargo build --bin pvloom, or set PVLOOM_BIN")
    return binary

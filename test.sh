#!/usr/bin/env bash
# Everything pvloom tests, from a fresh clone on a fresh machine: Rust checks and tests,
# the Python extension and its tests against the real peers installed into .venv.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
python3 --version

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets compile"
for fuzz in crates/*/fuzz; do
  [ -f "$fuzz/Cargo.toml" ] || continue
  (cd "$fuzz" && CARGO_TARGET_DIR="$PWD/../../../target/fuzz" cargo check --quiet --bins)
done

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements-test.txt

step "build the extension (maturin develop)"
VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" \
  .venv/bin/maturin develop --quiet --manifest-path crates/pvloom-py/Cargo.toml

step "docs (rustdoc, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet --exclude pvloom-py

step "Rust tests"
cargo test --workspace --locked

step "Python tests"
.venv/bin/python -m pytest -q crates/pvloom-py/tests

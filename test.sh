#!/usr/bin/env bash
# Everything pvloom tests, from a fresh clone on a fresh machine: Rust checks and tests,
# the Python extension and its tests against the real peers installed into .venv.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
python3 --version

step "system packages (Debian)"
# OpenSSL headers and pkg-config for pvloom-chirp's TLS (the openssl crate), which every
# cargo step below builds; libuv and libffi for the real libchirp's C extension; HDF5 for
# pvloom-nexus's NeXus writer.
PKGS=(pkg-config libssl-dev libuv1-dev libffi-dev libhdf5-dev)
if ! dpkg -s "${PKGS[@]}" >/dev/null 2>&1; then
  apt-get install -y -qq "${PKGS[@]}" >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${PKGS[@]}" >/dev/null; }
fi

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fuzz targets run (${FUZZ_SECONDS:-20} s each, from the committed seeds)"
# Installs cargo-fuzz when missing; a scratch copy of the seeds is the corpus, so the
# work tree stays clean. bench/fuzz without --scratch runs longer on a kept corpus.
bench/fuzz --scratch --seconds "${FUZZ_SECONDS:-20}"

step "Python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements-test.txt

step "chirp peer (libchirp 1.2.1b3 from PyPI, built against libuv and OpenSSL 3)"
# Without the define it does not link against OpenSSL 3 (FIPS_mode_set is gone there).
if ! .venv/bin/python -c "import libchirp.pool" 2>/dev/null; then
  CFLAGS='-DFIPS_mode_set(x)=((void)0)' .venv/bin/python -m pip install --quiet libchirp==1.2.1b3
fi

step "build the extension (maturin develop)"
VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" \
  .venv/bin/maturin develop --quiet --manifest-path crates/pvloom-py/Cargo.toml

step "docs (rustdoc, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet --exclude pvloom-py

step "Rust tests"
# The message load test at the issue's full size: 144 publishers x 10 000 messages.
PVLOOM_MSG_FULL=1 cargo test --workspace --locked

step "Python tests"
# chirp's concurrent requests at the issue's full size: 100 threads x 1 000 requests.
PVLOOM_CHIRP_FULL=1 .venv/bin/python -m pytest -q crates/pvloom-py/tests

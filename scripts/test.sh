#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the engines the tests start (PostgreSQL 15 and 18,
# MariaDB), then runs every test with ZERODOWN_REQUIRE_ENGINES=1 so a missing engine fails instead of
# skipping. Debug builds, small tables; big ones live in benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
ZERODOWN_REQUIRE_ENGINES=1 cargo test --all-targets "$@"

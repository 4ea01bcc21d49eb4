#!/usr/bin/env bash
# Runs the load-under-migration benchmark (release build) and keeps everything it printed.
#
#   scripts/bench.sh sqlite  [zerodown-bench flags…]   # a database file in a temporary directory
#   scripts/bench.sh pg15    [flags…]                  # a throwaway PostgreSQL 15 server
#   scripts/bench.sh pg18    [flags…]                  # a throwaway PostgreSQL 18 server (scripts/install-test-deps.sh)
#   scripts/bench.sh mariadb [flags…]                  # a throwaway MariaDB server (add --allow-copy for zerodown-copy)
#   ZERODOWN_BENCH_URL=postgres://…|mysql://… scripts/bench.sh url [flags…]   # a server you started
#     (the URL in the environment, not as --url: a command line, password included, is visible to `ps`)
#
# Throwaway servers come from the test suite's launcher (tests/support), through the ignored test
# `bench_on_throwaway_server` in tests/bench_smoke.rs: started in /tmp/zd-XXXXXX, server output in files
# there, stopped and removed at the end (ZERODOWN_KEEP_TEST_DIRS=1 keeps them).
# Output: target/bench/<engine>-<UTC time>.{txt,jsonl,stderr,uptime}; the report is also printed.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:?usage: scripts/bench.sh sqlite|pg15|pg18|mariadb|url [zerodown-bench flags…]}
shift
out=${ZERODOWN_BENCH_OUT:-target/bench}
mkdir -p "$out"
base="$out/$engine-$(date -u +%Y%m%dT%H%M%SZ)"
json="$PWD/$base.jsonl"
{
  echo "cores: $(nproc); memory: $(free -m | awk '/^Mem:/ {print $2 " MB"}')"
  echo "before: $(uptime)"
} > "$base.uptime"
case $engine in
  sqlite | url)
    cargo build --release --features bench --bin zerodown-bench 2> "$base.build"
    target/release/zerodown-bench --json "$json" "$@" > "$base.txt" 2> "$base.stderr"
    ;;
  pg[0-9]* | mariadb)
    cargo test --release --features bench --test bench_smoke --no-run 2> "$base.build"
    ZERODOWN_BENCH_ENGINE=$engine ZERODOWN_BENCH_ARGS="--json $json $*" \
      cargo test --release --features bench --test bench_smoke bench_on_throwaway_server -- --ignored --nocapture \
      > "$base.txt" 2> "$base.stderr"
    ;;
  *)
    echo "unknown engine $engine" >&2
    exit 2
    ;;
esac
echo "after: $(uptime)" >> "$base.uptime"
cat "$base.txt"
cat "$base.uptime"
echo "kept in $base.*" >&2

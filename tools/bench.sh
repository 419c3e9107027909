#!/usr/bin/env bash
# Builds kappa (release) and runs the benchmarks in Benchmarks/ (ordo-one/package-benchmark).
# The input (1,000,000 generated app_events lines) is made once in $KAPPA_BENCH_DIR
# (default /tmp/kappa-bench). Extra arguments go to `swift package benchmark`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product kappa
cd Benchmarks
swift package --allow-writing-to-directory /tmp benchmark --no-progress "$@"

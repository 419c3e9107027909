#!/usr/bin/env bash
# One command from a fresh Debian machine with Swift: install the system libraries,
# build kappa (release), and run `kappa demo` on generated data in ./kappa-data.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! dpkg -s liblz4-dev libsimdjson-dev lz4 librocksdb-dev >/dev/null 2>&1; then
  $sudo apt-get update
  $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y liblz4-dev libsimdjson-dev lz4 librocksdb-dev
fi
swift build -c release --product kappa
exec .build/release/kappa demo --reset "$@"

#!/usr/bin/env bash
# Kappa's libFuzzer targets (the Fuzz/ package). Usage:
#
#   tools/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER-FLAGS…]
#       builds fuzz-TARGET with sanitizer coverage and AddressSanitizer, then fuzzes it
#       for SECONDS (default 60) on its committed seed corpus Fuzz/Corpus/TARGET, one
#       process (-workers=1). New inputs go to Fuzz/.build/corpus/TARGET (not committed);
#       a crash or violated invariant leaves Fuzz/.build/artifacts/TARGET/crash-….
#   tools/fuzz.sh regress [SECONDS]
#       what CI runs: builds every target, replays its whole corpus, then fuzzes it for
#       SECONDS (default 5). Fails on the first finding.
#   tools/fuzz.sh repro TARGET FILE…
#       runs the target once on each FILE (a crash artifact, a corpus entry).
#   tools/fuzz.sh seeds
#       rewrites the generated seeds (Fuzz/Corpus/*/gen-*) from data Kappa writes: runs
#       `kappa demo` and the shipped jobs into temporary directories (see make_seed_data
#       and Fuzz/Sources/fuzz-seeds); hand-written seeds and regression inputs stay.
#       KAPPA_SCRATCH: the main package's build directory (default .build).
#
# Targets: batch segment jobfile json checkpoint repartition (Fuzz/Sources/fuzz-*).
set -euo pipefail
cd "$(dirname "$0")/.."
# A crash is libFuzzer's to report (and save); the Swift runtime's backtracer would
# symbolicate the whole instrumented binary first, which takes minutes.
export SWIFT_BACKTRACE=enable=no
# Fuzzing: no allocation stacks in reports and a small quarantine (a third more runs
# per second for the file-system-heavy targets); `repro` reports with full stacks.
FUZZ_ASAN_OPTIONS=malloc_context_size=0:quarantine_size_mb=16
ROOT=$PWD
FUZZ=$ROOT/Fuzz
TARGETS=(batch segment jobfile json checkpoint repartition)
SCRATCH=$FUZZ/.build/sanitized
# Not `--sanitize fuzzer --sanitize address`: SwiftPM passes those to swiftc as two flags,
# and the driver keeps only the last (so half the builds lose coverage or ASan).
BUILD_FLAGS=(--package-path "$FUZZ" --scratch-path "$SCRATCH" -c debug
             --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address)

# Dictionaries: keywords the mutator splices in (libFuzzer's -dict).
dict_for() {
    case "$1" in
        jobfile) echo "$FUZZ/Dictionaries/yaml.dict" ;;
        json) echo "$FUZZ/Dictionaries/json.dict" ;;
        *) echo "" ;;
    esac
}

# build TARGET…: one product per invocation (SwiftPM builds only the last --product
# given); the modules they share are compiled once. The gold linker's warnings about
# AddressSanitizer's local symbols are noise and are dropped.
build() {
    local log=$FUZZ/.build/build.log
    mkdir -p "$FUZZ/.build"
    for t in "$@"; do
        if ! swift build "${BUILD_FLAGS[@]}" --product "fuzz-$t" >"$log" 2>&1; then
            grep -v "Cannot export local symbol" "$log" >&2
            echo "fuzz.sh: building fuzz-$t failed" >&2
            exit 1
        fi
        grep -v "Cannot export local symbol" "$log" | tail -n 1
    done
}

bin_dir() { swift build "${BUILD_FLAGS[@]}" --show-bin-path 2>/dev/null; }

check_target() {
    local t=$1
    for known in "${TARGETS[@]}"; do [ "$known" = "$t" ] && return 0; done
    echo "fuzz.sh: unknown target '$t' (one of: ${TARGETS[*]})" >&2
    exit 2
}

# run TARGET SECONDS [extra flags…]: fuzz one target on its corpus.
run() {
    local t=$1 seconds=$2
    shift 2
    local bin work artifacts dict flags
    bin="$(bin_dir)/fuzz-$t"
    work=${WORK:-$FUZZ/.build/corpus/$t}
    artifacts=$FUZZ/.build/artifacts/$t
    mkdir -p "$work" "$artifacts"
    dict=$(dict_for "$t")
    flags=(-max_total_time="$seconds" -workers=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536
           -print_final_stats=1 -artifact_prefix="$artifacts/")
    [ -n "$dict" ] && flags+=(-dict="$dict")
    ASAN_OPTIONS=${ASAN_OPTIONS:-$FUZZ_ASAN_OPTIONS} "$bin" "${flags[@]}" "$@" "$work" "$FUZZ/Corpus/$t"
}

# make_seed_data: data directories Kappa itself fills, for fuzz-seeds (in $SEED_DATA):
# demo      `kappa demo`: 4 partitions keyed by user_id (rides-per-city re-keyed; v1, v2)
# layout2   rides keyed by city (direct), app events by event_type and tickets in 3
#           partitions (sessions and tickets re-keyed), the shipped jobs replayed
# format1   the checkpoint-format-1 fixture of the upgrade tests
make_seed_data() {
    local scratch=${KAPPA_SCRATCH:-$ROOT/.build}
    swift build --scratch-path "$scratch" --product kappa 2>&1 | tail -n 1
    swift build --scratch-path "$scratch" --product rebu-gen 2>&1 | tail -n 1
    local bin
    bin=$(swift build --scratch-path "$scratch" --show-bin-path)
    SEED_DATA=$(mktemp -d)
    trap 'rm -rf "$SEED_DATA"' EXIT
    local k=$bin/kappa l2=$SEED_DATA/layout2
    "$k" demo --events 2000 --data "$SEED_DATA/demo" >/dev/null
    "$bin/rebu-gen" --seed 7 --events 1500 --out "$SEED_DATA/gen" >/dev/null
    "$k" topics create rides --partitions 4 --key-field city --data "$l2"
    "$k" topics create tickets --partitions 3 --data "$l2"
    "$k" topics create app_events --partitions 4 --key-field event_type --data "$l2"
    for t in rides tickets app_events; do "$k" produce "$t" "$SEED_DATA/gen/$t.jsonl" --data "$l2" 2>/dev/null; done
    for j in "$ROOT"/jobs/*.yaml; do "$k" replay "$j" --data "$l2" >/dev/null 2>&1; done
    mkdir -p "$SEED_DATA/format1"
    tar xzf "$ROOT/Tests/KappaTests/Fixtures/format1-checkpoints.tgz" -C "$SEED_DATA/format1"
}

cmd=${1:-}
case "$cmd" in
    regress)
        seconds=${2:-5}
        build "${TARGETS[@]}"
        for t in "${TARGETS[@]}"; do
            # libFuzzer runs every corpus input first (INITED), then mutates until the time is up.
            log=$FUZZ/.build/regress-$t.log
            work=$FUZZ/.build/regress-corpus/$t  # only the committed corpus is replayed
            rm -rf "$work"
            if ! WORK=$work run "$t" "$seconds" >"$log" 2>&1; then
                grep -v "^INFO:" "$log" | tail -n 40 >&2
                echo "fuzz.sh: fuzz-$t failed: the input is in Fuzz/.build/artifacts/$t/, the whole log in $log" >&2
                exit 1
            fi
            inited=$(grep -m1 "INITED" "$log" | sed -E 's/.*cov: ([0-9]+).*/cov \1/')
            done_=$(grep "DONE" "$log" | sed -E 's/^#([0-9]+).*cov: ([0-9]+) ft: ([0-9]+).*/\1 runs, cov \2, ft \3/')
            echo "fuzz-$t: replayed $(ls "$FUZZ/Corpus/$t" | wc -l) corpus files ($inited), fuzzed ${seconds}s ($done_): no findings"
        done
        ;;
    repro)
        t=${2:?usage: tools/fuzz.sh repro TARGET FILE…}
        check_target "$t"
        shift 2
        build "$t"
        "$(bin_dir)/fuzz-$t" "$@"
        ;;
    seeds)
        make_seed_data
        swift build --package-path "$FUZZ" --scratch-path "$FUZZ/.build/plain" --product fuzz-seeds 2>&1 | tail -n 1
        "$FUZZ/.build/plain/debug/fuzz-seeds" "$FUZZ/Corpus" "$SEED_DATA/demo" "$SEED_DATA/layout2" "$SEED_DATA/format1/data"
        ;;
    ""|-h|--help)
        sed -n '2,20p' "$0"
        ;;
    *)
        check_target "$cmd"
        seconds=${2:-60}
        shift $(( $# >= 2 ? 2 : 1 ))
        [ "${1:-}" = "--" ] && shift
        build "$cmd"
        run "$cmd" "$seconds" "$@"
        ;;
esac

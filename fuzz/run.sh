#!/usr/bin/env bash
# The fuzzing campaign behind docs/RELIABILITY.md: builds the three cargo-fuzz targets (nightly,
# AddressSanitizer) and runs each for SECONDS (default 1200) on one core, one after another,
# starting from the committed seeds (fuzz/seeds/TARGET) and growing a working corpus under
# fuzz/corpus/TARGET. Prints a Markdown table of executions, libFuzzer's coverage counters and
# findings; a crashing input lands in fuzz/artifacts/TARGET/ (copy it to fuzz/regressions/TARGET/,
# where tests/fuzz_regressions.rs replays it on every test run).
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-1200}
shift || true
TARGETS=${*:-model_bytes c_entry_points image_inputs}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo +nightly fuzz build >&2
BIN=fuzz/target/x86_64-unknown-linux-gnu/release
LOGS=fuzz/logs
mkdir -p "$LOGS"
echo "| target | seconds | executions | exec/s | coverage (edges) | features | corpus | findings |"
echo "|---|---|---|---|---|---|---|---|"
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$LOGS/$t.log"
    # -timeout: one input taking 30 s is a finding (a hang); -rss_limit_mb: so is 2 GB of memory.
    "$BIN/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -max_total_time="$SECONDS_EACH" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" > "$log" 2>&1 || true
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | awk '{print $2}')
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' <<<"$last" | awk '{print $2}')
    secs=$(( ${execs:-0} / SECONDS_EACH ))
    found=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "| $t | $SECONDS_EACH | ${execs:-?} | ${secs:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $found |"
done

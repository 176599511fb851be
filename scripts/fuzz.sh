#!/usr/bin/env bash
# Run the cargo-fuzz targets of fuzz/ (wsx-proto and wsx-stomp's codec), one after the other.
#
#   bash scripts/fuzz.sh                  # every target for 60 s
#   bash scripts/fuzz.sh 600              # every target for 10 minutes
#   bash scripts/fuzz.sh 30 connection    # only some targets
#
# Builds once (`cargo fuzz build`, release with debug assertions and AddressSanitizer, in
# fuzz/target), then runs each target for SECONDS on its corpus in fuzz/corpus/TARGET (kept
# between runs; git-ignored). Prints the executions per target and exits non-zero if any target
# crashed (a panic, a failed invariant, a sanitizer report, a timeout or running out of memory);
# the input that did it is in fuzz/artifacts/TARGET/ and the log in reports/fuzz/TARGET.log.
# Reproduce one with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`
# from fuzz/.
#
# cargo-fuzz needs a nightly compiler; on stable, RUSTC_BOOTSTRAP=1 (set here) unlocks the
# nightly flags it passes. Install it with `cargo install cargo-fuzz --locked` (scripts/test.sh
# does that).
#
# Environment (all optional):
#   FUZZ_TIMEOUT      seconds one input may take before it counts as a hang (default 20)
#   FUZZ_RSS_MB       memory limit per target in MiB (default 2048)
#   FUZZ_BUILD_TIMEOUT seconds for the build (default 1800)
#   REPORTS_DIR       where the logs go (default ./reports; logs in REPORTS_DIR/fuzz)
set -uo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT_DIR/fuzz"
ALL_TARGETS=(frame_header handshake_request handshake_response deflate connection stomp_decoder)

SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=("${ALL_TARGETS[@]}")

# Run on its own, the run's deadline (see scripts/lib/common.sh) is what the targets need;
# under scripts/test.sh it is test.sh's, and the targets' times are cut to fit in it.
if [[ -z "${TEST_DEADLINE:-}" && "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]]; then
    TEST_DEADLINE=$(($(date +%s) + 1800 + ${#TARGETS[@]} * (SECONDS_PER_TARGET + 360)))
    export TEST_DEADLINE
fi
# shellcheck source=lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [[ "$SECONDS_PER_TARGET" -lt 1 ]]; then
    err "usage: scripts/fuzz.sh [SECONDS] [TARGET...] (SECONDS a positive integer)"
    exit 2
fi
for t in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { err "unknown target '$t' (targets: ${ALL_TARGETS[*]})"; exit 2; }
done

export RUSTC_BOOTSTRAP=1
LOG_DIR="$REPORTS_DIR/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    err "cargo-fuzz not found: cargo install cargo-fuzz --locked"
    exit 1
fi

main() {
    install_cleanup_trap
    mkdir -p "$LOG_DIR"
    local t0 rc=0
    t0=$(now_s)
    info "cargo fuzz build ($(cargo fuzz --version 2>/dev/null), $(rustc --version))"
    if ! run_limited "$LOG_DIR/build.log" "${FUZZ_BUILD_TIMEOUT:-1800}" env -C "$FUZZ_DIR" cargo fuzz build; then
        tail_log "$LOG_DIR/build.log" 60
        err "cargo fuzz build failed"
        return 1
    fi
    info "built in $(fmt_duration $(($(now_s) - t0)))"

    local t log runs eps crashed=() results=() status artifacts dict
    local secs left skipped=()
    for t in "${TARGETS[@]}"; do
        log="$LOG_DIR/$t.log"
        # Leave a minute of the run's budget for the libFuzzer exit and the summary.
        secs=$SECONDS_PER_TARGET
        left=$(($(time_left) - 60))
        if ((left < secs)); then
            if ((left < 5)); then
                warn "$t: not run, the run's budget (TEST_BUDGET) is spent"
                skipped+=("$t")
                results+=("$(printf 'SKIP  %-20s (no time left)' "$t")")
                continue
            fi
            warn "$t: fuzzing time cut from ${secs}s to ${left}s to fit the run's budget (TEST_BUDGET)"
            secs=$left
        fi
        mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t"
        info "fuzzing $t for ${secs}s (log: ${log#"$ROOT_DIR"/})"
        status=0
        dict=()
        case $t in
            handshake_request | handshake_response | deflate) dict=(-dict="$FUZZ_DIR/dict/http.dict") ;;
            stomp_decoder) dict=(-dict="$FUZZ_DIR/dict/stomp.dict") ;;
        esac
        # -max_total_time ends the run; the outer limit only catches a stuck process.
        run_limited "$log" "$((secs + 300))" env -C "$FUZZ_DIR" \
            cargo fuzz run "$t" -- \
            -max_total_time="$secs" \
            -timeout="${FUZZ_TIMEOUT:-20}" \
            -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
            -print_final_stats=1 "${dict[@]}" || status=$?
        # -print_final_stats=1 ends the log with stat::number_of_executed_units (runs, in
        # older libFuzzers); a crash ends it early, with the last "#N ..." status line.
        runs="$(sed -n 's/^stat::number_of_executed_\(units\|runs\): *\([0-9]*\).*/\2/p' "$log" | tail -n 1)"
        [[ -z "$runs" ]] && runs="$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)"
        [[ -z "$runs" ]] && runs="$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
        eps="$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
        if [[ $status == 124 || $status == 137 ]]; then
            crashed+=("$t")
            results+=("$(printf 'STUCK %-20s %12s execs  (killed after %ss)' "$t" "${runs:-?}" "$((secs + 300))")")
            tail_log "$log" 40
            err "$t: did not finish within $((secs + 300))s"
        elif [[ $status != 0 ]]; then
            crashed+=("$t")
            artifacts="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')"
            results+=("$(printf 'CRASH %-20s %12s execs  %s' "$t" "${runs:-?}" "${artifacts:-(exit $status)}")")
            tail_log "$log" 60
            err "$t: crashed (exit $status) after ${runs:-?} executions"
        else
            results+=("$(printf 'ok    %-20s %12s execs  %s exec/s' "$t" "${runs:-?}" "${eps:-?}")")
            info "$t: ${runs:-?} executions, no crash"
        fi
    done

    section "fuzz summary (${SECONDS_PER_TARGET}s per target)"
    printf '  %s\n' "${results[@]}"
    if [[ ${#crashed[@]} -gt 0 ]]; then
        echo "fuzz.sh: ${#crashed[@]} of ${#TARGETS[@]} targets crashed: ${crashed[*]}"
        rc=1
    else
        echo "fuzz.sh: $((${#TARGETS[@]} - ${#skipped[@]})) targets, no crash${skipped[*]:+ (not run for lack of time: ${skipped[*]})}"
    fi
    info "total time $(fmt_duration $(($(now_s) - t0)))"
    return $rc
}

main

#!/usr/bin/env bash
# scripts/bench_profile.sh: where an echo server's CPU time goes, per workload.
#
# For each workload and each server of PROFILE_SERVERS, runs the server under `wsx bench` (as
# scripts/bench.sh does, pinned the same way) and, during the run:
#   - reads the split of the server's CPU time into user space and kernel (`wsx bench` reports
#     it from /proc/PID/stat);
#   - counts the server's system calls with `perf stat` on the syscalls:sys_enter_* tracepoints;
#   - in a second run, samples the server with `perf record` and lists its busiest functions.
# It writes Markdown to OUT (bench/results/profile.md); scripts/bench.sh appends it to
# bench/RESULTS.md. Without perf (or without tracepoints) the split is still written and the
# parts perf would give say why they are missing.
#
# The figures are taken under perf, which costs the server some CPU: the throughput and CPU per
# message to compare are those of scripts/bench.sh; these say what the time is spent on.
#
# Environment (defaults in brackets):
#   PROFILE_SERVERS  servers to profile        [wsx fastwebsockets tokio-websockets]
#   WORKLOADS        workload ids (scripts/lib/bench.sh)                      [all]
#   TOP              functions listed per server and workload (overall, user space) [8]
#   NICE             niceness of servers and clients (needs root)                [0]
#   OUT              where to write the Markdown       [bench/results/profile.md]
# Expects bench/ and wsx-cli built in release mode (scripts/bench.sh builds them).
#
# Usage: scripts/bench_profile.sh        (about 3 minutes)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=scripts/lib/bench.sh
source "$ROOT_DIR/scripts/lib/bench.sh"

BENCH_DIR="$ROOT_DIR/bench"
BIN_DIR="$BENCH_DIR/target/release"
WSX="$ROOT_DIR/target/release/wsx"
PROFILE_SERVERS=${PROFILE_SERVERS:-"wsx fastwebsockets tokio-websockets"}
WORKLOADS=${WORKLOADS:-}
TOP=${TOP:-8}
NICE=${NICE:-0}
OUT=${OUT:-"$BENCH_DIR/results/profile.md"}
# Two runs per server and workload, each after WARMUP seconds: the first measures for
# DURATION seconds with the system calls counted inside its window (the figures of the table),
# the second is sampled by perf record for RECORD_SECS seconds.
WARMUP=1
DURATION=4
RECORD_SECS=2
# The system calls an echo server makes (tracepoints that do not exist here are dropped below).
SYSCALLS="read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait
epoll_pwait2 epoll_ctl io_uring_enter futex sched_yield accept4 close setsockopt shutdown mmap
munmap madvise brk"

WORK_DIR=$(mktemp -d)
SERVER_PID=""
on_exit() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
    [[ -n "${KEEP_WORK_DIR:-}" ]] || rm -rf "$WORK_DIR"
}
trap on_exit EXIT

echo_pinning "$NICE"

# What perf can do here: sampling (needs perf_event_paranoid <= 1 or root) and the syscall
# tracepoints (need tracefs, mounted here if it is not).
HAVE_RECORD=0
HAVE_TRACE=0
command -v perf >/dev/null 2>&1 || apt_install linux-perf || warn "no perf: profiles without samples"
if command -v perf >/dev/null 2>&1; then
    perf record -q -o "$WORK_DIR/probe.data" -- true >/dev/null 2>&1 && HAVE_RECORD=1
    if [[ ! -e /sys/kernel/tracing/events/syscalls ]] && [[ $EUID == 0 ]]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    fi
    perf stat -e 'syscalls:sys_enter_read' -o /dev/null -- true >/dev/null 2>&1 && HAVE_TRACE=1
fi
SYSCALL_EVENTS=$(for c in $SYSCALLS; do
    [[ -e /sys/kernel/tracing/events/syscalls/sys_enter_$c ]] && echo "syscalls:sys_enter_$c"
done | paste -sd, -)
[[ -n "$SYSCALL_EVENTS" ]] || HAVE_TRACE=0

select_workloads "$WORKLOADS"

# profile_one SERVER CONNS SIZE MODE COMPRESSION: the two runs of one server on one workload;
# prints the table row and leaves the busiest functions in $WORK_DIR/top-SERVER.txt.
profile_one() {
    local server=$1 conns=$2 size=$3 mode=$4 comp=$5 bin port args=() report
    bin=$(server_bin "$server")
    port=$(free_port)
    args=("127.0.0.1:$port")
    [[ "$comp" == on ]] && args+=(--deflate)
    "${SERVER_PIN[@]}" "$bin" "${args[@]}" </dev/null >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_port "$port" 10 "$SERVER_PID" || return 1
    local bench_args=("ws://127.0.0.1:$port/" -c "$conns" -s "$size" "--$mode"
        --server-pid "$SERVER_PID" --json)
    [[ "$comp" == on ]] && bench_args+=(--compression on)
    # Run 1: the figures, with the system calls counted inside the measured window (from
    # 0.3 s after it starts to 0.3 s before it ends).
    "${CLIENT_PIN[@]}" "$WSX" bench "${bench_args[@]}" -w "$WARMUP" -d "$DURATION" \
        >"$WORK_DIR/bench.json" 2>/dev/null &
    local bench_pid=$!
    : >"$WORK_DIR/stat.csv"
    local stat_secs
    stat_secs=$(awk -v d="$DURATION" 'BEGIN { print d - 0.6 }')
    if [[ $HAVE_TRACE == 1 ]]; then
        sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.3 }')"
        perf stat -x, -e "$SYSCALL_EVENTS" -p "$SERVER_PID" -o "$WORK_DIR/stat.csv" \
            -- sleep "$stat_secs" >/dev/null 2>&1 || true
    fi
    wait "$bench_pid" || true
    # Run 2: perf samples.
    rm -f "$WORK_DIR/perf.data"
    if [[ $HAVE_RECORD == 1 ]]; then
        "${CLIENT_PIN[@]}" "$WSX" bench "${bench_args[@]}" -w "$WARMUP" \
            -d "$((RECORD_SECS + 1))" >/dev/null 2>&1 &
        bench_pid=$!
        sleep "$(awk -v w="$WARMUP" 'BEGIN { print w + 0.5 }')"
        perf record -q -F 999 -p "$SERVER_PID" -o "$WORK_DIR/perf.data" \
            -- sleep "$RECORD_SECS" >/dev/null 2>&1 || true
        wait "$bench_pid" || true
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    report=$(cat "$WORK_DIR/bench.json")
    if ! jq -e .msgs_per_sec >/dev/null 2>&1 <<<"$report"; then
        echo "| $server | failed | | | | |"
        return 0
    fi
    local rate cpu share
    rate=$(jq -r .msgs_per_sec <<<"$report")
    cpu=$(jq -r '.server_cpu_ns_per_msg // empty' <<<"$report")
    share=$(jq -r '.server_kernel_share // empty' <<<"$report")
    # System calls per message: counts over the stat window ÷ the messages of that window
    # (the run's rate × the window's length; a message is one echo, one frame each way).
    local calls="n/a (no syscall tracepoints)"
    if [[ -s "$WORK_DIR/stat.csv" ]]; then
        calls=$(awk -F, -v n="$(awk -v r="$rate" -v s="$stat_secs" 'BEGIN { print r * s }')" '
            $1 ~ /^[0-9]+$/ && $1 > 0 && $3 ~ /sys_enter_/ {
                name = $3; sub(/.*sys_enter_/, "", name)
                if (n > 0 && $1 / n >= 0.005) { printf "%s%s %.2f", sep, name, $1 / n; sep = ", " }
            }' "$WORK_DIR/stat.csv")
    fi
    local user_ns="" kernel_ns=""
    if [[ -n "$cpu" && -n "$share" ]]; then
        kernel_ns=$(awk -v c="$cpu" -v s="$share" 'BEGIN { printf "%.0f", c * s }')
        user_ns=$(awk -v c="$cpu" -v s="$share" 'BEGIN { printf "%.0f", c * (1 - s) }')
    fi
    printf '| %s | %.0f | %s | %s | %s | %s |\n' "$server" "$rate" "${cpu%.*} ns" \
        "${user_ns:-?} ns" "${kernel_ns:-?} ns ($(awk -v s="${share:-0}" 'BEGIN { printf "%.0f", s * 100 }') %)" \
        "$calls"
    : >"$WORK_DIR/top-$server.txt"
    if [[ -s "$WORK_DIR/perf.data" ]]; then
        perf report -i "$WORK_DIR/perf.data" --stdio --no-children --sort dso -g none \
            2>/dev/null | grep -E '^ +[0-9]' | head -4 >"$WORK_DIR/top-$server.txt" || true
        echo "   ---" >>"$WORK_DIR/top-$server.txt"
        perf report -i "$WORK_DIR/perf.data" --stdio --no-children --sort sym -g none \
            2>/dev/null | grep -E '^ +[0-9]' >"$WORK_DIR/syms.txt" || true
        head -"$TOP" "$WORK_DIR/syms.txt" >>"$WORK_DIR/top-$server.txt"
        echo "   --- user space:" >>"$WORK_DIR/top-$server.txt"
        grep -F '[.]' "$WORK_DIR/syms.txt" | head -"$TOP" >>"$WORK_DIR/top-$server.txt" || true
    fi
}

mkdir -p "$(dirname "$OUT")"
{
    echo
    echo "## Where the time goes: profiles"
    echo
    echo "Written by \`scripts/bench_profile.sh\` ($(date -u +%FT%TZ)): each server under the same load as above, once with its system calls counted (\`perf stat\`, which costs the server some CPU: compare throughput and CPU with the tables above; these runs say what the time is spent on) and once sampled (\`perf record\`). *user* and *kernel* split the server's CPU time per message by \`utime\` and \`stime\` in \`/proc/PID/stat\`; system calls are counted per message (one echo) on the \`syscalls:sys_enter_*\` tracepoints; the busiest functions are from \`perf record\` samples of the server (\`[k]\` kernel, \`[.]\` user space)."
    [[ $HAVE_TRACE == 1 ]] || echo ">
> System calls were not counted: perf or its syscall tracepoints are not available here."
    [[ $HAVE_RECORD == 1 ]] || echo ">
> No samples: \`perf record\` does not work here (perf missing or perf_event_paranoid too high)."
} >"$WORK_DIR/out.md"

for w in "${SELECTED_WORKLOADS[@]}"; do
    IFS='|' read -r id conns size mode comp title <<<"$w"
    info "profile: $title"
    {
        echo
        echo "### $title"
        echo
        echo "| server | msg/s | CPU/msg | user | kernel | system calls per message |"
        echo "|---|---|---|---|---|---|"
    } >>"$WORK_DIR/out.md"
    servers=()
    for s in $PROFILE_SERVERS; do
        [[ "$comp" == on ]] && ! supports_deflate "$s" && continue
        servers+=("$s")
        profile_one "$s" "$conns" "$size" "$mode" "$comp" >>"$WORK_DIR/out.md" ||
            echo "| $s | did not start | | | | |" >>"$WORK_DIR/out.md"
    done
    if [[ $HAVE_RECORD == 1 ]]; then
        {
            echo
            echo "<details><summary>busiest functions</summary>"
            echo
            for s in "${servers[@]}"; do
                echo "$s:"
                echo
                echo '```'
                cat "$WORK_DIR/top-$s.txt" 2>/dev/null || true
                echo '```'
                echo
            done
            echo "</details>"
        } >>"$WORK_DIR/out.md"
    fi
done
cp "$WORK_DIR/out.md" "$OUT"
info "wrote $OUT"

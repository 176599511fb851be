#!/usr/bin/env bash
# scripts/bench_http2.sh: WebSockets over HTTP/2 (RFC 8441, h2c) against the same over HTTP/1.1,
# on one server: bench/src/bin/echo_wsx.rs serves both (it tells an HTTP/2 connection by its
# preface). Per round, in interleaved order, each case on a fresh server:
#   - echo, `wsx bench -c CONNECTIONS -s SIZE`: over HTTP/1.1 (one TCP connection per
#     WebSocket), over HTTP/2 on one connection (`--http2 -t 1`) and on 10 (`--http2 -t 10`):
#     messages per second and the server's CPU time per echoed message (from /proc);
#   - idle memory: the server's RSS growth per WebSocket with IDLE WebSockets open, over
#     HTTP/1.1 and over HTTP/2 with 100 per connection (bench/src/bin/idle_clients.rs).
# The report gives medians over rounds with the min-max spread, and the ratios HTTP/2 ÷ HTTP/1.1
# (targets of issue 15: idle memory per WebSocket ≤ 1×, CPU per message ≤ 1.3×).
#
# Server on CPU 0, clients on CPU 1 (taskset), as in scripts/bench.sh.
#
# Environment (defaults in brackets):
#   ROUNDS       rounds                                     [3]
#   DURATION     measured seconds per echo run              [5]
#   WARMUP       warm-up seconds per echo run               [1]
#   CONNECTIONS  WebSockets of the echo runs                [100]
#   SIZE         echo message size in bytes                 [20]
#   IDLE         WebSockets of the idle-memory runs         [10000]
#   NICE         niceness of server and client (needs root for < 0)   [0]
#   SKIP_BUILD=1 use the release binaries as they are
#   OUT_MD       where the markdown report goes             [stdout only]
#
# Usage: scripts/bench_http2.sh      (about 3 minutes on 2 cores)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=scripts/lib/bench.sh
source "$ROOT_DIR/scripts/lib/bench.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-100}
SIZE=${SIZE:-20}
IDLE=${IDLE:-10000}
NICE=${NICE:-0}
WSX="$ROOT_DIR/target/release/wsx"
BENCH_DIR="$ROOT_DIR/bench"
ECHO="$BENCH_DIR/target/release/echo_wsx"
IDLE_CLIENTS="$BENCH_DIR/target/release/idle_clients"
RUN_DIR="$BENCH_DIR/target/http2-run-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RUN_DIR"
: >"$RESULTS"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    info "cargo build --release -p wsx-cli; bench: echo_wsx, idle_clients"
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli >"$RUN_DIR/build.log" 2>&1) ||
        { tail -20 "$RUN_DIR/build.log"; exit 1; }
    (cd "$BENCH_DIR" && cargo build --release --bin echo_wsx --bin idle_clients \
        >>"$RUN_DIR/build.log" 2>&1) || { tail -20 "$RUN_DIR/build.log"; exit 1; }
fi
echo_pinning "$NICE"
ulimit -n $((IDLE * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

trap stop_run_server EXIT

# start_server: a fresh echo_wsx on a free port; sets PORT and SRV_PID.
start_server() {
    PORT=$(free_port)
    "${SERVER_PIN[@]}" "$ECHO" "127.0.0.1:$PORT" </dev/null >>"$RUN_DIR/server.log" 2>&1 &
    SRV_PID=$!
    wait_port "$PORT" 10 "$SRV_PID" || { err "echo_wsx did not start"; return 1; }
}

# record CASE KIND ROUND JSON: one result line.
record() {
    jq -c --arg case "$1" --arg kind "$2" --argjson r "$3" '. + {case: $case, kind: $kind, round: $r}' \
        <<<"$4" >>"$RESULTS"
}

# echo_case CASE ROUND WSX_BENCH_FLAGS...
echo_case() {
    local name=$1 round=$2 out
    shift 2
    start_server || return 1
    if out=$("${CLIENT_PIN[@]}" "$WSX" bench "$@" -c "$CONNECTIONS" -s "$SIZE" -d "$DURATION" \
        -w "$WARMUP" --json --server-pid "$SRV_PID" "ws://127.0.0.1:$PORT/" \
        2>>"$RUN_DIR/client.log"); then
        record "$name" echo "$round" "$out"
        info "echo $name round $round: $(jq -r '"\(.msgs_per_sec) msg/s, \(.server_cpu_ns_per_msg) ns server CPU per message"' <<<"$out")"
    else
        warn "echo $name round $round failed: $out"
    fi
    stop_run_server
}

# idle_case CASE ROUND IDLE_CLIENTS_FLAGS...
idle_case() {
    local name=$1 round=$2 out
    shift 2
    start_server || return 1
    if out=$("${CLIENT_PIN[@]}" "$IDLE_CLIENTS" "127.0.0.1:$PORT" --connections "$IDLE" "$@" \
        --server-pid "$SRV_PID" 2>>"$RUN_DIR/client.log"); then
        record "$name" idle "$round" "$out"
        info "idle $name round $round: $(jq -r '"\(.opened) open, \(.rss_per_connection | floor) B per WebSocket"' <<<"$out")"
    else
        warn "idle $name round $round failed: $out"
    fi
    stop_run_server
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
    echo_case "HTTP/1.1" "$r" -t 1
    echo_case "HTTP/2, 1 connection" "$r" --http2 -t 1
    echo_case "HTTP/2, 10 connections" "$r" --http2 -t 10
    idle_case "HTTP/1.1" "$r"
    idle_case "HTTP/2, 100 per connection" "$r" --http2 100
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(jq -r -s --arg load "$LOAD_BEFORE / $LOAD_AFTER" --arg pin "$PINNING" \
    --argjson conns "$CONNECTIONS" --argjson size "$SIZE" --argjson idle "$IDLE" \
    --argjson dur "$DURATION" --argjson rounds "$ROUNDS" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def fig(f): (map(f) | median) as $m | (map(f) | min) as $lo | (map(f) | max) as $hi |
        "\($m | . * 10 | round / 10) [\($lo | . * 10 | round / 10)–\($hi | . * 10 | round / 10)]";
    def med(f): map(f) | median;
    def cases(k): map(select(.kind == k)) | group_by(.case) | map({case: .[0].case, runs: .});
    def base(k; f): map(select(.kind == k and .case == "HTTP/1.1")) | med(f);
    . as $all |
    "# WebSockets over HTTP/2 (RFC 8441) vs HTTP/1.1\n",
    "Written by `scripts/bench_http2.sh`: one wsx echo server (bench/src/bin/echo_wsx.rs, h2c and HTTP/1.1 on one port), a fresh one per run, \($rounds) interleaved round(s). Echo: `wsx bench`, \($conns) WebSockets, \($size)-byte messages, \($dur) s measured per run. Idle memory: \($idle) WebSockets held open (bench/src/bin/idle_clients.rs), the server RSS growth ÷ WebSockets. Pinning: \($pin). Load average before / after: \($load). Figures: median [min–max] over rounds; ratios: medians ÷ those over HTTP/1.1.\n",
    "| echo | messages/s | server CPU per message (ns) | CPU ratio |",
    "|---|---|---|---|",
    ($all | cases("echo")[] | . as $c |
        "| \($c.case) | \($c.runs | fig(.msgs_per_sec)) | \($c.runs | fig(.server_cpu_ns_per_msg)) | \((($c.runs | med(.server_cpu_ns_per_msg)) / ($all | base("echo"; .server_cpu_ns_per_msg))) * 100 | round / 100)× |"),
    "",
    "| idle | WebSockets open | server memory per WebSocket (B) | ratio |",
    "|---|---|---|---|",
    ($all | cases("idle")[] | . as $c |
        "| \($c.case) | \($c.runs | med(.opened)) | \($c.runs | fig(.rss_per_connection)) | \((($c.runs | med(.rss_per_connection)) / ($all | base("idle"; .rss_per_connection))) * 100 | round / 100)× |")
    ' "$RESULTS")
printf '%s\n' "$report"
if [[ -n "${OUT_MD:-}" ]]; then
    printf '%s\n' "$report" >"$OUT_MD"
fi
info "raw results: $RESULTS"

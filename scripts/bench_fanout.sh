#!/usr/bin/env bash
# scripts/bench_fanout.sh: broadcast fan-out on `wsx serve`, with and without permessage-deflate
# (compress-once: each message is compressed once per deflate parameter set, not once per
# subscriber). `wsx bench --fanout` opens SUBSCRIBERS subscribers to a chat room and to the STOMP
# topic /topic/fanout, one publisher sends RATE messages/s of about SIZE bytes of JSON quotes,
# and the run reports, over the measured window: deliveries, the server's CPU time per delivery
# (from /proc/PID/task/*/schedstat) and the bytes the subscribers read from their sockets per
# delivery (frame header + payload as sent). Every round starts a fresh server for each case,
# in interleaved order (chat off, chat on, stomp off, stomp on, then again); the report gives the
# median over rounds with the min-max spread.
#
# Server on CPU 0, client on CPU 1 (taskset), as in scripts/bench.sh.
#
# Environment (defaults in brackets):
#   ROUNDS       rounds                                     [3]
#   DURATION     measured seconds per run                   [5]
#   WARMUP       warm-up seconds per run                    [1]
#   SUBSCRIBERS  subscribers                                [1000]
#   RATE         messages per second published              [20]
#   SIZE         message size in bytes                      [1024]
#   KINDS        "chat stomp" or one of them                [chat stomp]
#   NICE         niceness of server and client (needs root for < 0)   [0]
#   SKIP_BUILD=1 use target/release/wsx as it is
#   OUT_MD       where the markdown report goes             [stdout only]
#
# Usage: scripts/bench_fanout.sh      (about 2 minutes on 2 cores)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=scripts/lib/bench.sh
source "$ROOT_DIR/scripts/lib/bench.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
RATE=${RATE:-20}
SIZE=${SIZE:-1024}
KINDS=${KINDS:-"chat stomp"}
NICE=${NICE:-0}
WSX="$ROOT_DIR/target/release/wsx"
RUN_DIR="$ROOT_DIR/bench/target/fanout-run-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RUN_DIR"
: >"$RESULTS"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    info "cargo build --release -p wsx-cli"
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli >"$RUN_DIR/build.log" 2>&1) ||
        { tail -20 "$RUN_DIR/build.log"; exit 1; }
fi
echo_pinning "$NICE"
# Room for SUBSCRIBERS sockets on each side.
ulimit -n $((SUBSCRIBERS * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

trap stop_run_server EXIT

# run_case KIND COMPRESSION ROUND: one fresh server, one `wsx bench --fanout` run.
run_case() {
    local kind=$1 compression=$2 round=$3 port path out
    port=$(free_port)
    "${SERVER_PIN[@]}" "$WSX" --log-level error serve --listen "127.0.0.1:$port" \
        </dev/null >>"$RUN_DIR/server.log" 2>&1 &
    SRV_PID=$!
    wait_port "$port" 10 "$SRV_PID" || { err "wsx serve did not start"; return 1; }
    path=/stomp
    [[ "$kind" == chat ]] && path=/ws/chat/fanout
    if out=$("${CLIENT_PIN[@]}" "$WSX" bench --fanout "$kind" --compression "$compression" \
        -c "$SUBSCRIBERS" --rate "$RATE" -s "$SIZE" -d "$DURATION" -w "$WARMUP" -t 1 \
        --server-pid "$SRV_PID" "ws://127.0.0.1:$port$path" 2>>"$RUN_DIR/client.log"); then
        jq -c --arg c "$compression" --argjson r "$round" '. + {compression: $c, round: $r}' \
            <<<"$out" >>"$RESULTS"
        info "$kind deflate=$compression round $round: $(jq -r \
            '"\(.deliveries) deliveries, \(.server_cpu_ns_per_delivery) ns CPU, \(.wire_bytes_per_delivery) B on the wire per delivery"' <<<"$out")"
    else
        warn "$kind deflate=$compression round $round failed: $out"
    fi
    stop_run_server
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
    for kind in $KINDS; do
        for compression in off on; do
            run_case "$kind" "$compression" "$r"
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(jq -r -s --arg load "$LOAD_BEFORE / $LOAD_AFTER" --arg pin "$PINNING" \
    --argjson subs "$SUBSCRIBERS" --argjson rate "$RATE" --argjson size "$SIZE" \
    --argjson dur "$DURATION" --argjson rounds "$ROUNDS" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def fig(f): (map(f) | median) as $m | (map(f) | min) as $lo | (map(f) | max) as $hi |
        "\($m | . * 10 | round / 10) [\($lo | . * 10 | round / 10)–\($hi | . * 10 | round / 10)]";
    def med(f): map(f) | median;
    group_by(.kind) | map(
        . as $runs | ($runs | map(select(.compression == "off"))) as $off |
        ($runs | map(select(.compression == "on"))) as $on |
        {kind: $runs[0].kind, off: $off, on: $on,
         cpu_ratio: (($on | med(.server_cpu_ns_per_delivery)) / ($off | med(.server_cpu_ns_per_delivery))),
         bytes_ratio: (($on | med(.wire_bytes_per_delivery)) / ($off | med(.wire_bytes_per_delivery)))}) as $kinds |
    "# Broadcast fan-out: compress-once permessage-deflate\n",
    "Written by `scripts/bench_fanout.sh`: `wsx serve` (release build), \($subs) subscribers (`wsx bench --fanout`), one publisher at \($rate) messages/s of about \($size) bytes of JSON quotes (random prices and volumes: a hard case for deflate), \($dur) s measured per run, \($rounds) interleaved round(s), a fresh server per run. Pinning: \($pin). Load average before / after: \($load). Figures: median [min–max] over rounds. Server CPU per delivery = the server'"'"'s CPU time over the window ÷ deliveries; bytes on the wire = bytes the subscribers read from their sockets ÷ deliveries (frame headers and payloads, no TCP/IP overhead).\n",
    "| broadcast | deflate | deliveries/s | server CPU per delivery (ns) | bytes on the wire per delivery | payload bytes per delivery |",
    "|---|---|---|---|---|---|",
    ($kinds[] | . as $k | (["off", $k.off], ["on", $k.on]) | . as [$c, $r] |
        "| \($k.kind) | \($c) | \($r | fig(.deliveries_per_sec)) | \($r | fig(.server_cpu_ns_per_delivery)) | \($r | fig(.wire_bytes_per_delivery)) | \($r | fig(.payload_bytes_per_delivery)) |"),
    "",
    "Ratios of the medians, deflate on ÷ off (targets: CPU per delivery ≤ 1.5×, bytes on the wire ≤ 0.33×):\n",
    "| broadcast | CPU per delivery | bytes on the wire |",
    "|---|---|---|",
    ($kinds[] | "| \(.kind) | \(.cpu_ratio * 100 | round / 100)× \(if .cpu_ratio <= 1.5 then "✓" else "✗" end) | \(.bytes_ratio * 1000 | round / 1000)× \(if .bytes_ratio <= (1/3) then "✓" else "✗" end) |")
    ' "$RESULTS")
printf '%s\n' "$report"
if [[ -n "${OUT_MD:-}" ]]; then
    printf '%s\n' "$report" >"$OUT_MD"
fi
info "raw results: $RESULTS"

#!/usr/bin/env bash
# scripts/bench_fanout_peers.sh: the quote-push shape, wsx against the Rust peers. One publisher
# sends RATE messages/s of about SIZE bytes of JSON to SUBSCRIBERS subscribers on one server
# (`wsx bench --fanout`); the run reports the server's CPU time per delivered message (from
# /proc) and the publish-to-delivery latency (p50, p99; the publisher stamps each message).
# Servers, each fresh for every run, in interleaved order:
#   wsx-chat   `wsx serve`, a chat room (/ws/chat/fanout)
#   wsx-stomp  `wsx serve`, the STOMP topic /topic/fanout (/stomp)
#   wsx        bench/src/bin/fanout_wsx.rs: the wsx library with a tokio broadcast channel
#   tokio-tungstenite, tokio-websockets  bench/src/bin/fanout_*.rs: the same loop
#              (bench/src/broadcast.rs: the shape of tokio's and the crates' chat examples)
# No permessage-deflate (scripts/bench_fanout.sh measures it on wsx serve).
#
# Server on CPU 0, client on CPU 1 (taskset), as in scripts/bench.sh.
#
# Environment (defaults in brackets):
#   ROUNDS        rounds                                    [3]
#   DURATION      measured seconds per run                  [5]
#   WARMUP        warm-up seconds per run                   [1]
#   SUBSCRIBERS   subscriber counts, space separated        [1000 10000]
#   SIZES         message sizes in bytes, space separated   [100 1024]
#   RATE          messages per second published             [10]
#   SERVERS       servers, space separated                  [all of the above]
#   NICE          niceness of server and client (needs root for < 0)   [0]
#   SKIP_BUILD=1  use the release binaries as they are
#   OUT_MD        where the markdown report goes            [stdout only]
#
# Usage: scripts/bench_fanout_peers.sh   (about 10 minutes on 2 cores)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=scripts/lib/bench.sh
source "$ROOT_DIR/scripts/lib/bench.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SUBSCRIBERS=${SUBSCRIBERS:-"1000 10000"}
SIZES=${SIZES:-"100 1024"}
RATE=${RATE:-10}
SERVERS=${SERVERS:-"wsx-chat wsx-stomp wsx tokio-tungstenite tokio-websockets"}
NICE=${NICE:-0}
WSX="$ROOT_DIR/target/release/wsx"
BENCH_DIR="$ROOT_DIR/bench"
RUN_DIR="$BENCH_DIR/target/fanout-peers-run-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RUN_DIR"
: >"$RESULTS"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    info "cargo build --release -p wsx-cli; bench: fanout_*"
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli >"$RUN_DIR/build.log" 2>&1) ||
        { tail -20 "$RUN_DIR/build.log"; exit 1; }
    (cd "$BENCH_DIR" && cargo build --release --bin fanout_wsx --bin fanout_tungstenite \
        --bin fanout_tokio_websockets >>"$RUN_DIR/build.log" 2>&1) ||
        { tail -20 "$RUN_DIR/build.log"; exit 1; }
fi
echo_pinning "$NICE"
max_subs=0
for n in $SUBSCRIBERS; do ((n > max_subs)) && max_subs=$n; done
ulimit -n $((max_subs * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

trap stop_run_server EXIT

# run_case SERVER SUBSCRIBERS SIZE ROUND: one fresh server, one `wsx bench --fanout` run.
run_case() {
    local server=$1 subs=$2 size=$3 round=$4 port kind path out
    port=$(free_port)
    case "$server" in
        wsx-chat | wsx-stomp)
            "${SERVER_PIN[@]}" "$WSX" --log-level error serve --listen "127.0.0.1:$port" \
                --max-connections $((subs + 100)) </dev/null >>"$RUN_DIR/server.log" 2>&1 &
            ;;
        wsx) "${SERVER_PIN[@]}" "$BENCH_DIR/target/release/fanout_wsx" "127.0.0.1:$port" \
            </dev/null >>"$RUN_DIR/server.log" 2>&1 & ;;
        tokio-tungstenite) "${SERVER_PIN[@]}" "$BENCH_DIR/target/release/fanout_tungstenite" \
            "127.0.0.1:$port" </dev/null >>"$RUN_DIR/server.log" 2>&1 & ;;
        tokio-websockets) "${SERVER_PIN[@]}" \
            "$BENCH_DIR/target/release/fanout_tokio_websockets" "127.0.0.1:$port" \
            </dev/null >>"$RUN_DIR/server.log" 2>&1 & ;;
        *) err "unknown server $server"; return 1 ;;
    esac
    SRV_PID=$!
    wait_port "$port" 10 "$SRV_PID" || { err "$server did not start"; return 1; }
    case "$server" in
        wsx-chat) kind=chat path=/ws/chat/fanout ;;
        wsx-stomp) kind=stomp path=/stomp ;;
        *) kind=raw path=/ ;;
    esac
    if out=$("${CLIENT_PIN[@]}" "$WSX" bench --fanout "$kind" -c "$subs" --rate "$RATE" \
        -s "$size" -d "$DURATION" -w "$WARMUP" -t 1 --server-pid "$SRV_PID" \
        "ws://127.0.0.1:$port$path" 2>>"$RUN_DIR/client.log"); then
        jq -c --arg s "$server" --argjson r "$round" '. + {server: $s, round: $r}' \
            <<<"$out" >>"$RESULTS"
        info "$server $subs × $size B round $round: $(jq -r \
            '"\(.deliveries)/\(.expected_deliveries) delivered, \(.server_cpu_ns_per_delivery) ns CPU per delivery, p50 \(.latency_p50_us) µs, p99 \(.latency_p99_us) µs"' <<<"$out")"
    else
        warn "$server $subs × $size B round $round failed: $out"
    fi
    stop_run_server
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
    for subs in $SUBSCRIBERS; do
        for size in $SIZES; do
            for server in $SERVERS; do
                run_case "$server" "$subs" "$size" "$r"
            done
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(jq -r -s --arg load "$LOAD_BEFORE / $LOAD_AFTER" --arg pin "$PINNING" \
    --argjson rate "$RATE" --argjson dur "$DURATION" --argjson rounds "$ROUNDS" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def fig(f): (map(f) | map(select(. != null))) as $v | if ($v | length) == 0 then "—" else
        "\($v | median | . * 10 | round / 10) [\($v | min | . * 10 | round / 10)–\($v | max | . * 10 | round / 10)]" end;
    def med(f): map(f) | map(select(. != null)) | median;
    "# Fan-out: wsx against the Rust peers\n",
    "Written by `scripts/bench_fanout_peers.sh`: one publisher at \($rate) messages/s of JSON quotes, every subscriber on one server (`wsx bench --fanout`), no permessage-deflate, \($dur) s measured per run, \($rounds) interleaved round(s), a fresh server per run. Servers: `wsx serve` (a chat room, a STOMP topic) and, for the library level, one tokio broadcast channel and a task per connection (bench/src/broadcast.rs) on wsx, tokio-tungstenite and tokio-websockets. Pinning: \($pin). Load average before / after: \($load). Figures: median [min–max] over rounds; latency from the publisher'"'"'s stamp to the subscriber'"'"'s read, over every delivery of the window; \"best peer\": the lowest median CPU per delivery among tokio-tungstenite and tokio-websockets.\n",
    (group_by([.subscribers, .size]) | .[] | . as $case |
        ($case | map(select(.server == "tokio-tungstenite" or .server == "tokio-websockets")) | group_by(.server) | map(med(.server_cpu_ns_per_delivery)) | min) as $best |
        "## \($case[0].subscribers) subscribers × \($case[0].size) B\n",
        "| server | delivered ÷ expected | server CPU per delivery (ns) | ÷ best peer | latency p50 (µs) | latency p99 (µs) |",
        "|---|---|---|---|---|---|",
        ($case | group_by(.server) | .[] | . as $r |
            "| \($r[0].server) | \($r | fig(.deliveries / ([.expected_deliveries, 1] | max))) | \($r | fig(.server_cpu_ns_per_delivery)) | \(if $best then (($r | med(.server_cpu_ns_per_delivery)) / $best * 100 | round / 100 | tostring) + "×" else "—" end) | \($r | fig(.latency_p50_us)) | \($r | fig(.latency_p99_us)) |"),
        "")
    ' "$RESULTS")
printf '%s\n' "$report"
if [[ -n "${OUT_MD:-}" ]]; then
    printf '%s\n' "$report" >"$OUT_MD"
fi
info "raw results: $RESULTS"

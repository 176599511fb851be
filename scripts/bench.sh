#!/usr/bin/env bash
# scripts/bench.sh: wsx side by side with the other Rust WebSocket implementations, in one run.
#
# Builds bench/ (one echo server per implementation, `idle_clients`, `report`) and the `wsx`
# binary, then measures on this machine:
#   1. throughput and server CPU per message: every server under `wsx bench`, for each
#      workload, in interleaved rounds (A B C D E, A B C D E, ...);
#   2. idle memory per connection: server RSS with IDLE_CONNECTIONS handshaken, idle
#      connections, plain and with permessage-deflate negotiated (where supported);
#   3. connection set-up rate: fresh TCP connections + opening handshakes per second;
#   4. the 1 MiB workload against a memcpy-bound echo (bench/src/bin/echo_raw.rs);
#   5. where the time goes: scripts/bench_profile.sh (user/kernel split, system calls, perf);
#   6. the STOMP broker: scripts/bench_stomp.sh (wsx serve on Redis vs RabbitMQ web-stomp);
#   7. broadcast fan-out with and without permessage-deflate: scripts/bench_fanout.sh;
#   8. fan-out (quote push) against the Rust peers, CPU per delivery and latency:
#      scripts/bench_fanout_peers.sh;
#   9. WebSockets over HTTP/2 vs HTTP/1.1 (echo CPU, idle memory): scripts/bench_http2.sh;
# and writes bench/RESULTS.md and bench/charts/*.svg (the raw figures go to bench/results/).
#
# Server and client are pinned to different cores with taskset when there are two or more.
# Anything else busy on the machine disturbs the figures: the report records the load and
# the busiest processes at the start.
#
# Environment (defaults in brackets; QUICK=1 changes the defaults to a smoke test):
#   QUICK=1            1 round of 3 s, 1 idle/churn round                          [off]
#   ROUNDS             rounds per workload                                          [5]
#   DURATION           measured seconds per run                                     [5]
#   WARMUP             warmup seconds per run (not counted)                         [1]
#   IDLE_CONNECTIONS   idle connections for the memory figure                       [10000]
#   IDLE_ROUNDS        rounds of the idle-memory and set-up measurements            [3]
#   CHURN_SECS         seconds of connection set-up per server and round            [3]
#   CHURN_CONCURRENCY  handshakes in flight during set-up                           [64]
#   SERVERS            implementations, space separated
#                      [wsx tokio-tungstenite tokio-websockets fastwebsockets sockudo-ws]
#   WORKLOADS          workload ids to run, space separated                         [all]
#   NICE               niceness of servers and clients, e.g. -10 to win the CPU from
#                      background builds on a shared machine (needs root)           [0]
#   SKIP_BUILD=1       use the binaries already built
#   PROFILE=0          skip the profiles (scripts/bench_profile.sh, appended)              [1]
#   STOMP=0            skip the STOMP broker benchmark (scripts/bench_stomp.sh, appended)  [1]
#   FANOUT=0           skip the fan-out benchmark (scripts/bench_fanout.sh, appended)      [1]
#   FANOUT_PEERS=0     skip fan-out against the peers (scripts/bench_fanout_peers.sh)      [1]
#   HTTP2=0            skip HTTP/2 vs HTTP/1.1 (scripts/bench_http2.sh, appended)           [1]
#
# Usage: scripts/bench.sh            (about 20 minutes on 2 cores)
#        QUICK=1 scripts/bench.sh    (about 3 minutes)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=scripts/lib/bench.sh
source "$ROOT_DIR/scripts/lib/bench.sh"

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    IDLE_ROUNDS=${IDLE_ROUNDS:-1}
    CHURN_SECS=${CHURN_SECS:-2}
else
    ROUNDS=${ROUNDS:-5}
    DURATION=${DURATION:-5}
    IDLE_ROUNDS=${IDLE_ROUNDS:-3}
    CHURN_SECS=${CHURN_SECS:-3}
fi
WARMUP=${WARMUP:-1}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
CHURN_CONCURRENCY=${CHURN_CONCURRENCY:-64}
SERVERS=${SERVERS:-"wsx tokio-tungstenite tokio-websockets fastwebsockets sockudo-ws"}

WORKLOADS=${WORKLOADS:-}
# The workload whose throughput is compared with the memcpy-bound echo (echo_raw).
CEILING_WORKLOAD=c16_s1m_binary

BENCH_DIR="$ROOT_DIR/bench"
BIN_DIR="$BENCH_DIR/target/release"
WSX="$ROOT_DIR/target/release/wsx"
RUN_DIR="$BENCH_DIR/target/run-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RUN_DIR"
: >"$RESULTS"

# ---------------------------------------------------------------------------
# helpers

# Pinning: the server on CPU 0, the client(s) on CPU 1, at niceness NICE.
NICE=${NICE:-0}
echo_pinning "$NICE"
AUTOGROUP_NICE=""
if [[ "$NICE" != 0 ]]; then
    # Against other sessions' work only the session's autogroup nice counts (restored on exit).
    if AUTOGROUP_NICE=$(autogroup_nice "$NICE"); then
        PINNING="$PINNING (and autogroup nice $NICE)"
    fi
fi

# Every server this script started, so the EXIT trap can stop it.
declare -A SERVER_PIDS=()

# start_server NAME DEFLATE(0|1) -> sets SRV_PID and SRV_PORT.
start_server() {
    local name=$1 deflate=$2 bin port log args=()
    bin=$(server_bin "$name")
    port=$(free_port)
    log="$RUN_DIR/server-$name.log"
    args=("127.0.0.1:$port")
    [[ "$deflate" == 1 ]] && args+=(--deflate)
    "${SERVER_PIN[@]}" "$bin" "${args[@]}" </dev/null >>"$log" 2>&1 &
    SRV_PID=$!
    SRV_PORT=$port
    SERVER_PIDS[$SRV_PID]=1
    if ! wait_port "$port" 10 "$SRV_PID"; then
        err "$name did not start (log: $log)"
        return 1
    fi
}

stop_server() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "SERVER_PIDS[$pid]"
}

stop_all_servers() {
    local pid
    for pid in "${!SERVER_PIDS[@]}"; do
        stop_server "$pid"
    done
}
on_exit() {
    stop_all_servers
    autogroup_restore "$AUTOGROUP_NICE"
}
trap on_exit EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "terminated" >&2; exit 143' TERM

# record KIND SERVER EXTRA_JSON REPORT_JSON|"" ERROR: append one line to results.jsonl.
record() {
    local kind=$1 server=$2 extra=$3 report=$4 error=${5:-}
    if [[ -n "$report" ]] && jq -e . >/dev/null 2>&1 <<<"$report"; then
        jq -c -n --arg kind "$kind" --arg server "$server" --argjson extra "$extra" \
            --argjson report "$report" '{kind: $kind, server: $server} + $extra + {report: $report}' \
            >>"$RESULTS"
    else
        jq -c -n --arg kind "$kind" --arg server "$server" --argjson extra "$extra" \
            --arg error "${error:-no output}" '{kind: $kind, server: $server} + $extra + {error: $error}' \
            >>"$RESULTS"
    fi
}

machine_snapshot() {
    top -b -n 2 -d 1 -w 200 2>/dev/null | awk '/^top -/{n++} n==2' | sed -n '7,15p' ||
        ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -9
}

# ---------------------------------------------------------------------------
# build

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    section "build"
    info "bench/ (release)"
    (cd "$BENCH_DIR" && cargo build --release)
    info "wsx-cli (release)"
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli)
fi
for s in $SERVERS; do
    server_bin "$s" >/dev/null || {
        err "unknown server $s"
        exit 1
    }
    [[ -x "$(server_bin "$s")" ]] || {
        err "$(server_bin "$s") is missing: build bench/ first"
        exit 1
    }
done
[[ -x "$WSX" ]] || {
    err "$WSX is missing"
    exit 1
}

# Room for IDLE_CONNECTIONS sockets in the server and in idle_clients.
hard=$(ulimit -Hn)
want=$((IDLE_CONNECTIONS + 1000))
if [[ "$hard" != unlimited ]] && ((hard < want)); then
    IDLE_CONNECTIONS=$((hard - 1000))
    warn "open-file hard limit is $hard: idle connections cut to $IDLE_CONNECTIONS"
    want=$hard
fi
ulimit -n "$want"

# ---------------------------------------------------------------------------
# the run

STARTED=$(date -u +%FT%TZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_BEFORE=$(machine_snapshot)
section "machine"
info "load average: $LOAD_BEFORE; pinning: $PINNING"
printf '%s\n' "$OTHERS_BEFORE"

select_workloads "$WORKLOADS"

section "throughput: ${#SELECTED_WORKLOADS[@]} workloads × $ROUNDS rounds × ${DURATION}s"
for w in "${SELECTED_WORKLOADS[@]}"; do
    IFS='|' read -r id conns size mode comp title <<<"$w"
    servers=()
    for s in $SERVERS; do
        if [[ "$comp" == on ]] && ! supports_deflate "$s"; then
            continue
        fi
        servers+=("$s")
    done
    # The 1 MiB workload also runs the memcpy-bound ceiling (bench/src/bin/echo_raw.rs: read,
    # unmask, write back; nothing else), recorded apart from the implementations.
    if [[ "$id" == "$CEILING_WORKLOAD" && " $SERVERS " == *" wsx "* ]]; then
        servers+=(raw)
    fi
    # One server per implementation for the whole workload, all idle but the one under load.
    declare -A pid_of=() port_of=()
    for s in "${servers[@]}"; do
        start_server "$s" "$([[ "$comp" == on ]] && echo 1 || echo 0)"
        pid_of[$s]=$SRV_PID
        port_of[$s]=$SRV_PORT
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for s in "${servers[@]}"; do
            out=""
            rc=0
            out=$(timeout $((DURATION + WARMUP + 90)) "${CLIENT_PIN[@]}" "$WSX" bench \
                "ws://127.0.0.1:${port_of[$s]}/" --connections "$conns" --size "$size" \
                "--$mode" --compression "$comp" --duration "$DURATION" --warmup "$WARMUP" \
                --json --server-pid "${pid_of[$s]}" 2>>"$RUN_DIR/client.log") || rc=$?
            extra=$(jq -c -n --arg w "$id" --argjson r "$round" '{workload: $w, round: $r}')
            record "$([[ "$s" == raw ]] && echo ceiling || echo throughput)" "$s" "$extra" "$out" \
                "wsx bench exited with $rc"
            if [[ -n "$out" ]] && jq -e . >/dev/null 2>&1 <<<"$out"; then
                info "$(jq -r --arg s "$s" --arg t "$title" --arg r "$round/$ROUNDS" \
                    '"[\($r)] \($t) \($s): \(.msgs_per_sec | floor) msg/s, server \(.server_cpu_ns_per_msg // "?" | if type == "number" then floor else . end) ns/msg, errors \(.errors)"' \
                    <<<"$out")"
            else
                warn "[$round/$ROUNDS] $title $s: wsx bench failed (exit $rc)"
            fi
            if ! kill -0 "${pid_of[$s]}" 2>/dev/null; then
                warn "$s died; restarting it"
                start_server "$s" "$([[ "$comp" == on ]] && echo 1 || echo 0)"
                pid_of[$s]=$SRV_PID
                port_of[$s]=$SRV_PORT
            fi
        done
    done
    for s in "${servers[@]}"; do
        stop_server "${pid_of[$s]}"
    done
    unset pid_of port_of
done

section "idle memory: $IDLE_CONNECTIONS connections × $IDLE_ROUNDS rounds"
for ((round = 1; round <= IDLE_ROUNDS; round++)); do
    for s in $SERVERS; do
        for deflate in 0 1; do
            if [[ "$deflate" == 1 ]] && ! supports_deflate "$s"; then
                continue
            fi
            start_server "$s" "$deflate"
            flags=(--connections "$IDLE_CONNECTIONS" --server-pid "$SRV_PID" --concurrency 128)
            [[ "$deflate" == 1 ]] && flags+=(--deflate)
            out=""
            rc=0
            out=$(timeout 180 "${CLIENT_PIN[@]}" "$BIN_DIR/idle_clients" "127.0.0.1:$SRV_PORT" \
                "${flags[@]}" 2>>"$RUN_DIR/client.log") || rc=$?
            extra=$(jq -c -n --argjson d "$([[ "$deflate" == 1 ]] && echo true || echo false)" \
                --argjson r "$round" '{deflate: $d, round: $r}')
            record idle "$s" "$extra" "$out" "idle_clients exited with $rc"
            if [[ -n "$out" ]]; then
                info "$(jq -r --arg s "$s" --arg d "$deflate" \
                    '"[idle] \($s) deflate=\($d): \(.opened) open, \(.rss_per_connection | floor) B/conn, \(.handshakes_per_sec | floor) handshakes/s"' \
                    <<<"$out")"
            else
                warn "[idle] $s deflate=$deflate failed (exit $rc)"
            fi
            stop_server "$SRV_PID"
        done
    done
done

section "connection set-up: ${CHURN_SECS}s × $IDLE_ROUNDS rounds, $CHURN_CONCURRENCY in flight"
for ((round = 1; round <= IDLE_ROUNDS; round++)); do
    for s in $SERVERS; do
        start_server "$s" 0
        out=""
        rc=0
        out=$(timeout $((CHURN_SECS + 60)) "${CLIENT_PIN[@]}" "$BIN_DIR/idle_clients" \
            "127.0.0.1:$SRV_PORT" --churn "$CHURN_SECS" --concurrency "$CHURN_CONCURRENCY" \
            --server-pid "$SRV_PID" 2>>"$RUN_DIR/client.log") || rc=$?
        record churn "$s" "$(jq -c -n --argjson r "$round" '{round: $r}')" "$out" \
            "idle_clients exited with $rc"
        if [[ -n "$out" ]]; then
            info "$(jq -r --arg s "$s" \
                '"[set-up] \($s): \(.handshakes_per_sec | floor) handshakes/s, server \(.server_cpu_ns_per_handshake // 0 | floor) ns each, \(.failed) failed"' \
                <<<"$out")"
        else
            warn "[set-up] $s failed (exit $rc)"
        fi
        stop_server "$SRV_PID"
    done
done

# ---------------------------------------------------------------------------
# report

section "report"
workloads_json=$(for w in "${SELECTED_WORKLOADS[@]}"; do
    IFS='|' read -r id conns size mode comp title <<<"$w"
    jq -c -n --arg id "$id" --arg name "$title" --argjson c "$conns" --argjson s "$size" \
        --arg m "$mode" --argjson comp "$([[ "$comp" == on ]] && echo true || echo false)" \
        '{id: $id, name: $name, connections: $c, size: $s, mode: $m, compression: $comp}'
done | jq -s -c .)
commit=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT_DIR" status --porcelain -- crates/wsx crates/wsx-proto 2>/dev/null)" ]]; then
    commit="$commit + uncommitted changes"
fi
deflate_servers=()
for s in $SERVERS; do
    supports_deflate "$s" && deflate_servers+=("$s")
done
jq -n \
    --arg started "$STARTED" --arg finished "$(date -u +%FT%TZ)" \
    --argjson quick "$([[ "$QUICK" == 1 ]] && echo true || echo false)" \
    --argjson rounds "$ROUNDS" --argjson duration "$DURATION" --argjson warmup "$WARMUP" \
    --argjson idle_connections "$IDLE_CONNECTIONS" --argjson idle_rounds "$IDLE_ROUNDS" \
    --argjson churn_s "$CHURN_SECS" --argjson churn_concurrency "$CHURN_CONCURRENCY" \
    --arg cpu_model "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson cores "$(nproc)" --arg kernel "$(uname -sr)" \
    --arg rustc "$(rustc --version 2>/dev/null || echo unknown)" \
    --arg wsx_commit "$commit" --arg pinning "$PINNING" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg others_before "$OTHERS_BEFORE" \
    --argjson workloads "$workloads_json" \
    --argjson servers "$(jq -R -c 'split(" ") | map(select(length > 0))' <<<"$SERVERS")" \
    --argjson deflate_servers "$(printf '%s\n' "${deflate_servers[@]}" | jq -R 'select(length > 0)' | jq -s -c .)" \
    '{started: $started, finished: $finished, quick: $quick, rounds: $rounds,
      duration_s: $duration, warmup_s: $warmup, idle_connections: $idle_connections,
      idle_rounds: $idle_rounds, churn_s: $churn_s, churn_concurrency: $churn_concurrency,
      cpu_model: $cpu_model, cores: $cores, kernel: $kernel, rustc: $rustc,
      wsx_commit: $wsx_commit, pinning: $pinning, load_before: $load_before,
      load_after: $load_after, others_before: $others_before, workloads: $workloads,
      servers: $servers, deflate_servers: $deflate_servers}' >"$RUN_DIR/meta.json"

mkdir -p "$BENCH_DIR/results" "$BENCH_DIR/charts"
cp "$RUN_DIR/meta.json" "$RUN_DIR/results.jsonl" "$BENCH_DIR/results/"
"$BIN_DIR/report" "$BENCH_DIR/results" "$BENCH_DIR/Cargo.lock" "$BENCH_DIR/RESULTS.md" \
    "$BENCH_DIR/charts"
# The memcpy-bound ceiling of the 1 MiB workload, appended to RESULTS.md.
ceiling_section() {
    jq -r -s --arg w "$CEILING_WORKLOAD" '
        def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
        def runs(kind; server): [.[] | select(.kind == kind and .server == server and .workload == $w and .report != null) | .report];
        def fig(r): {
            msgs: (r | map(.msgs_per_sec) | median),
            cpu: (r | map(.server_cpu_ns_per_msg) | median),
            size: (r | first | .size // 1048576) };
        (runs("throughput"; "wsx")) as $wsx | (runs("ceiling"; "raw")) as $raw |
        if ($wsx | length) == 0 or ($raw | length) == 0 then empty else
        fig($wsx) as $a | fig($raw) as $b |
        def gbs(m; size): m * size * 2 / 1e9;
        def core(cpu; size): size * 2 / cpu;
        "\n## 1 MiB messages against a memcpy-bound echo\n",
        "`echo_raw` (bench/src/bin/echo_raw.rs) does only what any echo must: read each frame into one reused buffer, unmask it in place, write it back; no message assembly, checks or allocation. Same load (`wsx bench`, 16 connections × 1 MiB binary, one in flight each), interleaved with the others; medians over \($raw | length) round(s). GB/s count payload bytes in and out; \"per server core\" divides them by the CPU time of the server.\n",
        "| server | msg/s | GB/s on the wire | server CPU per message | GB/s per server core |",
        "|---|---|---|---|---|",
        "| wsx | \($a.msgs | floor) | \(gbs($a.msgs; $a.size) * 100 | round / 100) | \($a.cpu / 1000 | round) µs | \(core($a.cpu; $a.size) * 100 | round / 100) |",
        "| memcpy-bound echo | \($b.msgs | floor) | \(gbs($b.msgs; $b.size) * 100 | round / 100) | \($b.cpu / 1000 | round) µs | \(core($b.cpu; $b.size) * 100 | round / 100) |",
        "",
        "wsx ÷ ceiling: messages per second \($a.msgs / $b.msgs * 100 | round / 100)×, CPU per message \($a.cpu / $b.cpu * 100 | round / 100)× (target: throughput within 2× of the ceiling)."
        end' "$RUN_DIR/results.jsonl"
}
ceiling=$(ceiling_section || true)
if [[ -n "$ceiling" ]]; then
    printf '%s\n' "$ceiling" >>"$BENCH_DIR/RESULTS.md"
fi

# Where the servers' time goes (scripts/bench_profile.sh: user/kernel split, system calls per
# message, perf samples), appended to RESULTS.md. PROFILE=0 skips it.
if [[ "${PROFILE:-1}" == 1 ]]; then
    section "profiles (scripts/bench_profile.sh)"
    profile_md="$RUN_DIR/profile.md"
    if NICE="$NICE" WORKLOADS="$WORKLOADS" OUT="$profile_md" \
        bash "$ROOT_DIR/scripts/bench_profile.sh"; then
        [[ "$QUICK" == 1 ]] || cp "$profile_md" "$BENCH_DIR/results/profile.md"
        cat "$profile_md" >>"$BENCH_DIR/RESULTS.md"
    else
        warn "scripts/bench_profile.sh failed: RESULTS.md has no profile section"
    fi
fi

# The STOMP broker benchmark (scripts/bench_stomp.sh: wsx serve on Redis against RabbitMQ),
# appended to RESULTS.md. STOMP=0 skips it.
if [[ "${STOMP:-1}" == 1 ]]; then
    section "STOMP brokers (scripts/bench_stomp.sh)"
    stomp_md="$RUN_DIR/stomp.md"
    if QUICK="$QUICK" NICE="$NICE" SKIP_BUILD="${SKIP_BUILD:-0}" OUT_MD="$stomp_md" \
        bash "$ROOT_DIR/scripts/bench_stomp.sh"; then
        [[ "$QUICK" == 1 ]] || cp "$stomp_md" "$BENCH_DIR/results/stomp.md"
        { printf '\n'; sed 's/^#/##/' "$stomp_md"; } >>"$BENCH_DIR/RESULTS.md"
    else
        warn "scripts/bench_stomp.sh failed: RESULTS.md has no STOMP section"
    fi
fi
# Broadcast fan-out with and without permessage-deflate (scripts/bench_fanout.sh), appended to
# RESULTS.md. FANOUT=0 skips it.
if [[ "${FANOUT:-1}" == 1 ]]; then
    section "broadcast fan-out (scripts/bench_fanout.sh)"
    fanout_md="$RUN_DIR/fanout.md"
    fanout_env=(NICE="$NICE" SKIP_BUILD=1 OUT_MD="$fanout_md")
    [[ "$QUICK" == 1 ]] && fanout_env+=(ROUNDS=1 DURATION=3 SUBSCRIBERS=200)
    if env "${fanout_env[@]}" bash "$ROOT_DIR/scripts/bench_fanout.sh"; then
        [[ "$QUICK" == 1 ]] || cp "$fanout_md" "$BENCH_DIR/results/fanout.md"
        { printf '\n'; sed 's/^#/##/' "$fanout_md"; } >>"$BENCH_DIR/RESULTS.md"
    else
        warn "scripts/bench_fanout.sh failed: RESULTS.md has no fan-out section"
    fi
fi
# Fan-out against the Rust peers (scripts/bench_fanout_peers.sh), appended to RESULTS.md.
# FANOUT_PEERS=0 skips it.
if [[ "${FANOUT_PEERS:-1}" == 1 ]]; then
    section "fan-out against the peers (scripts/bench_fanout_peers.sh)"
    peers_md="$RUN_DIR/fanout_peers.md"
    peers_env=(NICE="$NICE" SKIP_BUILD=1 OUT_MD="$peers_md")
    [[ "$QUICK" == 1 ]] && peers_env+=(ROUNDS=1 DURATION=3 SUBSCRIBERS=1000 SIZES=100)
    if env "${peers_env[@]}" bash "$ROOT_DIR/scripts/bench_fanout_peers.sh"; then
        [[ "$QUICK" == 1 ]] || cp "$peers_md" "$BENCH_DIR/results/fanout_peers.md"
        { printf '\n'; sed 's/^#/##/' "$peers_md"; } >>"$BENCH_DIR/RESULTS.md"
    else
        warn "scripts/bench_fanout_peers.sh failed: RESULTS.md has no fan-out-against-peers section"
    fi
fi
# WebSockets over HTTP/2 vs HTTP/1.1 (scripts/bench_http2.sh), appended to RESULTS.md. HTTP2=0
# skips it.
if [[ "${HTTP2:-1}" == 1 ]]; then
    section "HTTP/2 vs HTTP/1.1 (scripts/bench_http2.sh)"
    http2_md="$RUN_DIR/http2.md"
    http2_env=(NICE="$NICE" SKIP_BUILD=1 OUT_MD="$http2_md")
    [[ "$QUICK" == 1 ]] && http2_env+=(ROUNDS=1 DURATION=3 IDLE=2000)
    if env "${http2_env[@]}" bash "$ROOT_DIR/scripts/bench_http2.sh"; then
        [[ "$QUICK" == 1 ]] || cp "$http2_md" "$BENCH_DIR/results/http2.md"
        { printf '\n'; sed 's/^#/##/' "$http2_md"; } >>"$BENCH_DIR/RESULTS.md"
    else
        warn "scripts/bench_http2.sh failed: RESULTS.md has no HTTP/2 section"
    fi
fi
info "wrote bench/RESULTS.md, bench/charts/*.svg and bench/results/ (run dir: $RUN_DIR)"

#!/usr/bin/env bash
# scripts/bench_stomp.sh: the STOMP broker of `wsx serve` (two nodes sharing one Redis) side by
# side with RabbitMQ 3 and its web-stomp plugin (a two-node cluster), both over WebSocket and
# driven by the same load client (bench/src/bin/stomp_load.rs).
#
# Workloads (each on both brokers, interleaved: wsx, rabbit, wsx, rabbit, ... over ROUNDS):
#   fanout_100   one publisher, SUBSCRIBERS subscribers on one topic split over the two nodes,
#                100 B bodies, published as fast as deliveries keep up (FANOUT_WINDOW
#                messages in flight)
#   fanout_1k    the same with 1 KiB bodies
#   fanout_rate  100 B bodies at a fixed FANOUT_RATE messages/s (the same delivery rate on
#                both brokers, for latency at equal load)
#   queue_100    CONSUMERS consumers (ack client-individual, one ACK per message, window of
#                256 unacknowledged) on one queue split over the two nodes, PRODUCERS
#                producers keeping QUEUE_WINDOW messages in flight, 100 B bodies
#   queue_1k     the same with 1 KiB bodies
# Figures per run: deliveries/s, p50/p99 publish-to-delivery latency, broker CPU per delivery
# (utime+stime of the broker processes over the measured window / deliveries; for wsx with
# and without Redis' share). The report (medians over rounds, min-max spread) goes to
# bench/results/stomp.md and stdout; the raw JSON lines stay in bench/target/stomp-run-*/.
#
# Pinning (2 cores): every broker process (wsx nodes, redis-server, RabbitMQ's beam.smp and
# epmd) on CPU 0, the load client on CPU 1 (taskset), so each broker gets one core and the
# client the other. The idle broker stays up (idle) while the other one is measured.
#
# Environment (defaults in brackets; QUICK=1 turns them into a smoke test):
#   QUICK=1        1 round, 3 s measured, 1 s warm-up, 200 subscribers       [off]
#   ROUNDS         rounds                                                      [3]
#   DURATION       measured seconds per run                                    [8]
#   WARMUP         warm-up seconds per run (not counted)                       [2]
#   SUBSCRIBERS    fan-out subscribers                                         [1000]
#   CONSUMERS      queue consumers                                             [10]
#   PRODUCERS      queue producers                                             [1]
#   FANOUT_WINDOW  fan-out messages in flight                                  [64]
#   FANOUT_RATE    fan-out messages/s of fanout_rate                           [10]
#   QUEUE_WINDOW   queue messages in flight                                    [1000]
#   WORKLOADS      workload ids, space separated                               [all]
#   BROKERS        "wsx rabbit" or one of them                                 [wsx rabbit]
#   NODES          broker nodes per side (1 or 2)                              [2]
#   REDIS_MODE     wsx's Redis: "single" (one redis-server) or "cluster" (SHARDS primaries
#                  without replicas, `--broker redis-cluster://…`; its CPU is all of theirs) [single]
#   SHARDS         primaries of REDIS_MODE=cluster                              [3]
#   RABBIT_ERL_ARGS  extra Erlang VM flags of the RabbitMQ nodes: by default scheduler
#                  busy-waiting is off, as RabbitMQ advises on shared CPUs (both nodes share
#                  a core here; spinning would be billed as CPU per delivery)
#                                             [+sbwt none +sbwtdcpu none +sbwtdio none]
#   NICE           niceness of brokers and client (e.g. -10; needs root); with
#                  autogroup scheduling also the nice of this session's autogroup, or
#                  other sessions' work still gets an equal share of each core   [0]
#   SKIP_BUILD=1   use the binaries already built
#   OUT_MD         where the report goes      [bench/results/stomp.md; QUICK: the run directory]
#
# Usage: scripts/bench_stomp.sh           (about 8 minutes on 2 cores)
#        QUICK=1 scripts/bench_stomp.sh   (about 2 minutes)
#        NODES=1 OUT_MD=/tmp/stomp-1node.md scripts/bench_stomp.sh   (one node a side)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
    WARMUP=${WARMUP:-1}
    SUBSCRIBERS=${SUBSCRIBERS:-200}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-8}
    WARMUP=${WARMUP:-2}
    SUBSCRIBERS=${SUBSCRIBERS:-1000}
fi
CONSUMERS=${CONSUMERS:-10}
PRODUCERS=${PRODUCERS:-1}
FANOUT_WINDOW=${FANOUT_WINDOW:-64}
FANOUT_RATE=${FANOUT_RATE:-10}
QUEUE_WINDOW=${QUEUE_WINDOW:-1000}
BROKERS=${BROKERS:-"wsx rabbit"}
NODES=${NODES:-2}
REDIS_MODE=${REDIS_MODE:-single}
SHARDS=${SHARDS:-3}
NICE=${NICE:-0}
WORKLOADS=${WORKLOADS:-"fanout_100 fanout_1k fanout_rate queue_100 queue_1k"}

# id | mode | size | extra stomp_load flags | title
workload_def() {
    case $1 in
        fanout_100) echo "fanout|100|--subscribers $SUBSCRIBERS --window $FANOUT_WINDOW|fan-out, $SUBSCRIBERS subscribers, 100 B, max rate" ;;
        fanout_1k) echo "fanout|1024|--subscribers $SUBSCRIBERS --window $FANOUT_WINDOW|fan-out, $SUBSCRIBERS subscribers, 1 KiB, max rate" ;;
        fanout_rate) echo "fanout|100|--subscribers $SUBSCRIBERS --window 1000 --rate $FANOUT_RATE|fan-out, $SUBSCRIBERS subscribers, 100 B, $FANOUT_RATE msg/s fixed" ;;
        queue_100) echo "queue|100|--consumers $CONSUMERS --producers $PRODUCERS --window $QUEUE_WINDOW --ack client-individual|queue, $CONSUMERS consumers (client-individual), 100 B" ;;
        queue_1k) echo "queue|1024|--consumers $CONSUMERS --producers $PRODUCERS --window $QUEUE_WINDOW --ack client-individual|queue, $CONSUMERS consumers (client-individual), 1 KiB" ;;
        *) return 1 ;;
    esac
}

BENCH_DIR="$ROOT_DIR/bench"
LOAD="$BENCH_DIR/target/release/stomp_load"
WSX="$ROOT_DIR/target/release/wsx"
RUN_DIR="$BENCH_DIR/target/stomp-run-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$RUN_DIR/results.jsonl"
mkdir -p "$RUN_DIR"
: >"$RESULTS"
RABBIT_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

BROKER_PIN=()
CLIENT_PIN=()
PINNING="none (taskset missing or a single CPU)"
if command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
    BROKER_PIN=(taskset -c 0)
    CLIENT_PIN=(taskset -c 1)
    PINNING="every broker process (wsx nodes + redis-server; RabbitMQ beam.smp + epmd) on CPU 0, load client on CPU 1 (taskset)"
fi
AUTOGROUP_NICE=""
if [[ "$NICE" != 0 ]]; then
    BROKER_PIN=(nice -n "$NICE" "${BROKER_PIN[@]}")
    CLIENT_PIN=(nice -n "$NICE" "${CLIENT_PIN[@]}")
    PINNING="$PINNING; nice $NICE"
    # Against other sessions' work only the session's autogroup nice counts (restored on exit).
    if AUTOGROUP_NICE=$(autogroup_nice "$NICE"); then
        PINNING="$PINNING (and autogroup nice $NICE)"
    fi
fi

# ---------------------------------------------------------------------------
# cleanup: every process started here is a bg_start process group; RabbitMQ's epmd runs on a
# port of its own and is stopped through it.

EPMD_PORT=""
RABBIT_DIR=""
cleanup() {
    cleanup_bg
    if [[ -n "$EPMD_PORT" ]] && command -v epmd >/dev/null 2>&1; then
        ERL_EPMD_PORT=$EPMD_PORT epmd -kill >/dev/null 2>&1 || true
    fi
    [[ -n "$RABBIT_DIR" ]] && rm -rf "$RABBIT_DIR"
    autogroup_restore "$AUTOGROUP_NICE"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "terminated" >&2; exit 143' TERM

# ---------------------------------------------------------------------------
# install + build

section "install"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[[ " $BROKERS " != *" rabbit "* || -x "$RABBIT_SERVER" ]] || need+=(rabbitmq-server)
[[ "$REDIS_MODE" != cluster ]] || command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
    # policy-rc.d (containers) or a stopped service afterwards: the Debian service must not run.
    apt_install "${need[@]}"
fi
if [[ " $BROKERS " == *" rabbit "* ]]; then
    # The Debian package starts a node of its own where services may start: stop it (ours run
    # under other names and ports, but it would take CPU).
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
        warn "stopping and disabling the Debian rabbitmq-server service"
        systemctl stop rabbitmq-server || true
        systemctl disable rabbitmq-server >/dev/null 2>&1 || true
    fi
fi
RABBIT_VERSION=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
ERLANG_VERSION=$(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo unknown)
REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
info "rabbitmq-server $RABBIT_VERSION, erlang $ERLANG_VERSION, redis $REDIS_VERSION"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    section "build"
    info "bench/ stomp_load (release)"
    (cd "$BENCH_DIR" && cargo build --release --bin stomp_load)
    info "wsx-cli (release)"
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli)
fi
[[ -x "$LOAD" ]] || { err "$LOAD is missing"; exit 1; }
[[ -x "$WSX" ]] || { err "$WSX is missing"; exit 1; }

# Room for the subscribers' sockets (client) and the brokers' (inherited).
hard=$(ulimit -Hn)
want=$((SUBSCRIBERS * 2 + 1000))
if [[ "$hard" != unlimited ]] && ((hard < want)); then
    want=$hard
fi
ulimit -n "$want" 2>/dev/null || true

# ---------------------------------------------------------------------------
# wsx: redis + NODES x wsx serve --broker redis://...

WSX_URLS=()
WSX_PIDS=()
WSX_AUX=()
WSX_SETUP=""
# child_of PID: the process that bg_start's timeout(1) PID runs (taskset and nice exec it).
child_of() {
    local i c
    for ((i = 0; i < 50; i++)); do
        c=$(pgrep -P "$1" | head -1 || true)
        [[ -n "$c" ]] && { echo "$c"; return 0; }
        sleep 0.1
    done
    return 1
}

# start_redis_cluster: SHARDS cluster-enabled redis-servers (pids in WSX_AUX), joined into one
# cluster without replicas; sets BROKER_URL.
start_redis_cluster() {
    local s rport ports=() dir="$RUN_DIR/cluster"
    mkdir -p "$dir"
    for ((s = 1; s <= SHARDS; s++)); do
        # A cluster node's bus listens on its port + 10000.
        rport=$(free_port)
        while ((rport > 55535)); do rport=$(free_port); done
        bg_start "$RUN_DIR/redis$s.log" 3000 "${BROKER_PIN[@]}" redis-server --port "$rport" \
            --bind 127.0.0.1 --save "" --appendonly no --protected-mode no --cluster-enabled yes \
            --cluster-config-file "$dir/nodes-$rport.conf" --dir "$dir"
        WSX_AUX+=("$(child_of "$BG_PID")")
        wait_port "$rport" 20 "$BG_PID" || { err "redis $s did not start"; tail_log "$RUN_DIR/redis$s.log"; return 1; }
        ports+=("127.0.0.1:$rport")
    done
    redis-cli --cluster create "${ports[@]}" --cluster-replicas 0 --cluster-yes \
        >"$RUN_DIR/cluster-create.log" 2>&1 || { err "redis-cli --cluster create failed"; tail_log "$RUN_DIR/cluster-create.log"; return 1; }
    for ((s = 0; s < 100; s++)); do
        redis-cli -p "${ports[0]##*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
        sleep 0.1
    done
    BROKER_URL="redis-cluster://$(IFS=,; echo "${ports[*]}")"
}

start_wsx() {
    local i port rport
    if "$WSX" serve --help 2>/dev/null | grep -q -- '--broker'; then
        if [[ "$REDIS_MODE" == cluster ]]; then
            start_redis_cluster || return 1
            WSX_SETUP="$NODES × \`wsx serve --broker redis-cluster://…\` + a Redis Cluster of $SHARDS primaries (redis-server $REDIS_VERSION)"
        else
            rport=$(free_port)
            bg_start "$RUN_DIR/redis.log" 3000 "${BROKER_PIN[@]}" redis-server --port "$rport" \
                --bind 127.0.0.1 --save "" --appendonly no --protected-mode no
            WSX_AUX+=("$(child_of "$BG_PID")")
            wait_port "$rport" 20 "$BG_PID" || { err "redis did not start"; tail_log "$RUN_DIR/redis.log"; return 1; }
            BROKER_URL="redis://127.0.0.1:$rport"
            WSX_SETUP="$NODES × \`wsx serve --broker redis://…\` + 1 redis-server $REDIS_VERSION"
        fi
        for ((i = 1; i <= NODES; i++)); do
            port=$(free_port)
            bg_start "$RUN_DIR/wsx$i.log" 3000 "${BROKER_PIN[@]}" "$WSX" serve \
                --listen "127.0.0.1:$port" --broker "$BROKER_URL" --node-id "bench$i"
            WSX_PIDS+=("$(child_of "$BG_PID")")
            wait_port "$port" 20 "$BG_PID" || { err "wsx node $i did not start"; tail_log "$RUN_DIR/wsx$i.log"; return 1; }
            WSX_URLS+=("ws://127.0.0.1:$port/stomp")
        done
    else
        warn "this wsx has no --broker flag: ONE node with the in-memory broker"
        port=$(free_port)
        bg_start "$RUN_DIR/wsx1.log" 3000 "${BROKER_PIN[@]}" "$WSX" serve --listen "127.0.0.1:$port"
        WSX_PIDS+=("$(child_of "$BG_PID")")
        wait_port "$port" 20 "$BG_PID" || { err "wsx did not start"; tail_log "$RUN_DIR/wsx1.log"; return 1; }
        WSX_URLS+=("ws://127.0.0.1:$port/stomp")
        WSX_SETUP="1 × \`wsx serve\`, in-memory broker (no --broker in this build)"
    fi
    info "wsx: $WSX_SETUP: ${WSX_URLS[*]} (pids: nodes ${WSX_PIDS[*]}, redis ${WSX_AUX[*]:-none})"
}

# ---------------------------------------------------------------------------
# RabbitMQ: NODES nodes clustered, web-stomp on each, in a temporary directory

RABBIT_URLS=()
RABBIT_PIDS=()
RABBIT_SETUP=""
rabbit_env() { # NODE-INDEX -> the environment of node i (also for rabbitmqctl)
    local i=$1 d="$RABBIT_DIR/node$1"
    echo "HOME=$RABBIT_DIR/home"
    echo "ERL_EPMD_PORT=$EPMD_PORT"
    echo "RABBITMQ_NODENAME=wsxbench$i@localhost"
    echo "RABBITMQ_CONF_ENV_FILE=$RABBIT_DIR/no-env.conf"
    echo "RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf"
    echo "RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins"
    echo "RABBITMQ_MNESIA_BASE=$d/mnesia"
    echo "RABBITMQ_LOG_BASE=$d/log"
    echo "RABBITMQ_PID_FILE=$d/beam.pid"
    echo "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
    echo "RABBITMQ_NODE_PORT=$(cat "$d/amqp.port")"
    echo "RABBITMQ_DIST_PORT=$(cat "$d/dist.port")"
    # Erlang's schedulers spin while idle by default; with both nodes (and the other broker)
    # on one core the spinning would steal from the node doing the work and be billed to it.
    echo "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=${RABBIT_ERL_ARGS-+sbwt none +sbwtdcpu none +sbwtdio none}"
}
rabbitctl() { # NODE-INDEX ARGS...
    local i=$1
    shift
    local envs=()
    mapfile -t envs < <(rabbit_env "$i")
    env "${envs[@]}" "$RABBIT_CTL" -n "wsxbench$i@localhost" "$@"
}
start_rabbit() {
    local i d wport envs=() pid
    RABBIT_DIR=$(mktemp -d /tmp/wsx-bench-rabbit.XXXXXX)
    EPMD_PORT=$(free_port)
    mkdir -p "$RABBIT_DIR/home"
    head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$RABBIT_DIR/home/.erlang.cookie"
    chmod 400 "$RABBIT_DIR/home/.erlang.cookie"
    echo "[rabbitmq_web_stomp]." >"$RABBIT_DIR/enabled_plugins"
    for ((i = 1; i <= NODES; i++)); do
        d="$RABBIT_DIR/node$i"
        mkdir -p "$d/mnesia" "$d/log"
        free_port >"$d/amqp.port"
        free_port >"$d/dist.port"
        wport=$(free_port)
        cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(cat "$d/amqp.port")
stomp.listeners.tcp.1 = 127.0.0.1:$(free_port)
web_stomp.tcp.port = $wport
web_stomp.tcp.ip = 127.0.0.1
log.console = false
log.file.level = warning
EOF
        mapfile -t envs < <(rabbit_env "$i")
        bg_start "$RABBIT_DIR/node$i.out" 3000 env "${envs[@]}" "${BROKER_PIN[@]}" "$RABBIT_SERVER"
        if ! timeout 120 env "${envs[@]}" "$RABBIT_CTL" -n "wsxbench$i@localhost" -q wait --timeout 90 "$d/beam.pid" >/dev/null 2>&1; then
            err "RabbitMQ node $i did not start"
            tail_log "$RABBIT_DIR/node$i.out"
            for f in "$d"/log/*.log; do tail_log "$f"; done
            return 1
        fi
        if ((i > 1)); then
            rabbitctl "$i" -q stop_app
            rabbitctl "$i" -q join_cluster "wsxbench1@localhost"
            rabbitctl "$i" -q start_app
        fi
        wait_port "$wport" 60 || { err "web-stomp of RabbitMQ node $i is not listening"; return 1; }
        pid=$(cat "$d/beam.pid")
        RABBIT_PIDS+=("$pid")
        RABBIT_URLS+=("ws://127.0.0.1:$wport/ws")
    done
    local nodes
    nodes=$(rabbitctl 1 cluster_status --formatter json 2>/dev/null | jq -r '.running_nodes | length' 2>/dev/null || echo "?")
    RABBIT_SETUP="$NODES-node RabbitMQ $RABBIT_VERSION cluster ($nodes running), rabbitmq_web_stomp, Erlang $ERLANG_VERSION"
    info "rabbit: $RABBIT_SETUP: ${RABBIT_URLS[*]} (beam.smp pids ${RABBIT_PIDS[*]})"
}

machine_snapshot() {
    top -b -n 2 -d 1 -w 200 2>/dev/null | awk '/^top -/{n++} n==2' | sed -n '7,14p' ||
        ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -8
}

# ---------------------------------------------------------------------------
# the run

section "brokers"
for b in $BROKERS; do
    case $b in
        wsx) start_wsx ;;
        rabbit) start_rabbit ;;
        *) err "unknown broker $b"; exit 1 ;;
    esac
done

STARTED=$(date -u +%FT%TZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_BEFORE=$(machine_snapshot)
section "machine"
info "load average: $LOAD_BEFORE; pinning: $PINNING"
printf '%s\n' "$OTHERS_BEFORE"

run_one() { # BROKER WORKLOAD ROUND
    local b=$1 w=$2 r=$3 def mode size flags urls=() pids=() aux=() args=() out rc=0
    def=$(workload_def "$w")
    IFS="|" read -r mode size flags _ <<<"$def"
    if [[ $b == wsx ]]; then
        urls=("${WSX_URLS[@]}")
        pids=("${WSX_PIDS[@]}")
        aux=("${WSX_AUX[@]}")
    else
        urls=("${RABBIT_URLS[@]}")
        pids=("${RABBIT_PIDS[@]}")
        args+=(--login guest --passcode guest)
    fi
    for u in "${urls[@]}"; do args+=(--url "$u"); done
    for p in "${pids[@]}"; do args+=(--server-pid "$p"); done
    for p in "${aux[@]}"; do args+=(--aux-pid "$p"); done
    # shellcheck disable=SC2086
    out=$(timeout $((DURATION + WARMUP + 120)) "${CLIENT_PIN[@]}" "$LOAD" "$mode" --size "$size" \
        $flags --duration "$DURATION" --warmup "$WARMUP" "${args[@]}" \
        2>>"$RUN_DIR/client.log") || rc=$?
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [[ -n "$out" ]] && jq -e . >/dev/null 2>&1 <<<"$out"; then
        jq -c --arg b "$b" --arg w "$w" --argjson r "$r" --arg load "$load" \
            '{broker: $b, workload: $w, round: $r, load1: ($load | tonumber)} + .' <<<"$out" >>"$RESULTS"
        info "$(jq -r --arg t "[$r/$ROUNDS] $w $b" '"\($t): \(.deliveries_per_sec | floor) deliveries/s, p50 \(.latency_us.p50 | floor) µs, p99 \(.latency_us.p99 | floor) µs, \(.cpu_us_per_delivery // 0 | . * 100 | floor / 100) µs CPU/delivery, broker \(.server_cpu_util * 100 | floor) % / client \(.client_cpu_util * 100 | floor) % CPU, errors \(.errors), gaps \(.gaps)"' <<<"$out")"
    else
        jq -c -n --arg b "$b" --arg w "$w" --argjson r "$r" --arg e "stomp_load exited with $rc" \
            '{broker: $b, workload: $w, round: $r, error: $e}' >>"$RESULTS"
        warn "[$r/$ROUNDS] $w $b: stomp_load failed (exit $rc; see $RUN_DIR/client.log)"
        tail -3 "$RUN_DIR/client.log" >&2 || true
    fi
    # Let the broker drop the closed connections' subscriptions (RabbitMQ deletes a queue per
    # subscriber) before the next run: wait until it is idle.
    wait_idle "${pids[@]}" "${aux[@]}"
}

cpu_ticks() { # PID... -> utime+stime summed, in clock ticks
    local p t=0 f
    for p in "$@"; do
        f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        f=${f##*) }
        read -r -a a <<<"$f"
        t=$((t + a[11] + a[12]))
    done
    echo "$t"
}

wait_idle() { # PID...: until they use under 5 % of a core over 0.5 s (at most 20 s)
    local i a b hz
    hz=$(getconf CLK_TCK)
    for ((i = 0; i < 40; i++)); do
        a=$(cpu_ticks "$@")
        sleep 0.5
        b=$(cpu_ticks "$@")
        (((b - a) * 100 <= hz * 5 / 2)) && return 0
    done
    warn "the broker is still busy after 20 s"
}

section "runs: $WORKLOADS × $ROUNDS rounds × (${WARMUP}s + ${DURATION}s)"
for w in $WORKLOADS; do
    workload_def "$w" >/dev/null || { err "unknown workload $w"; exit 1; }
    for ((round = 1; round <= ROUNDS; round++)); do
        for b in $BROKERS; do
            run_one "$b" "$w" "$round"
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# report

section "report"
mkdir -p "$BENCH_DIR/results"
commit=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT_DIR" status --porcelain -- crates 2>/dev/null)" ]]; then
    commit="$commit + uncommitted changes"
fi
titles=$(for w in $WORKLOADS; do
    def=$(workload_def "$w")
    jq -c -n --arg id "$w" --arg t "${def##*|}" '{($id): $t}'
done | jq -s -c 'add')
jq -n --arg started "$STARTED" --arg finished "$(date -u +%FT%TZ)" \
    --argjson rounds "$ROUNDS" --argjson duration "$DURATION" --argjson warmup "$WARMUP" \
    --argjson quick "$([[ $QUICK == 1 ]] && echo true || echo false)" \
    --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    --argjson cores "$(nproc)" --arg kernel "$(uname -sr)" \
    --arg rustc "$(rustc --version 2>/dev/null || echo unknown)" --arg commit "$commit" \
    --arg pinning "$PINNING" --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" \
    --arg others "$OTHERS_BEFORE" --arg wsx_setup "$WSX_SETUP" --arg rabbit_setup "$RABBIT_SETUP" \
    --arg rabbit_version "$RABBIT_VERSION" --arg erlang "$ERLANG_VERSION" --arg redis "$REDIS_VERSION" \
    --argjson titles "$titles" --arg workloads "$WORKLOADS" --arg brokers "$BROKERS" \
    --argjson subscribers "$SUBSCRIBERS" --argjson consumers "$CONSUMERS" \
    --argjson producers "$PRODUCERS" --argjson fanout_window "$FANOUT_WINDOW" \
    --argjson queue_window "$QUEUE_WINDOW" --argjson fanout_rate "$FANOUT_RATE" \
    '$ARGS.named' >"$RUN_DIR/meta.json"
if [[ -z "${OUT_MD:-}" ]]; then
    OUT_MD="$BENCH_DIR/results/stomp.md"
    [[ "$QUICK" == 1 ]] && OUT_MD="$RUN_DIR/stomp.md"
fi
python3 - "$RUN_DIR/meta.json" "$RESULTS" "$OUT_MD" <<'EOF'
import json, statistics, sys

meta = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
out = sys.argv[3]

def med(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else None

def fmt_rate(v):
    return f"{v/1e6:.2f} M" if v >= 1e6 else f"{v/1e3:.1f} k" if v >= 1e3 else f"{v:.0f}"

def fmt_us(v):
    return f"{v/1000:.1f} ms" if v >= 10000 else f"{v:.0f} µs" if v >= 100 else f"{v:.1f} µs"

def fmt_cpu(v):
    return f"{v:.2f} µs"

def cell(m, f):
    if m is None:
        return "–"
    v, lo, hi = m
    return f"{f(v)} [{f(lo)}–{f(hi)}]" if meta["rounds"] > 1 else f(v)

L = []
L.append("# STOMP brokers: wsx serve on Redis vs RabbitMQ web-stomp")
L.append("")
L.append(f"Written by `scripts/bench_stomp.sh` (run {meta['started']} → {meta['finished']}"
         + (", QUICK smoke run" if meta["quick"] else "") + "). "
         f"Every figure is the **median over {meta['rounds']} interleaved round(s)** "
         "(wsx, RabbitMQ, wsx, RabbitMQ, …) with the min–max spread in brackets.")
L.append("")
L.append("## Setup")
L.append("")
L.append("| | |")
L.append("|---|---|")
L.append(f"| CPU | {meta['cpu']} |")
L.append(f"| cores | {meta['cores']} |")
L.append(f"| kernel | {meta['kernel']} |")
L.append(f"| rustc | {meta['rustc']} |")
L.append(f"| wsx | commit {meta['commit']}: {meta['wsx_setup'] or 'not run'} |")
L.append(f"| RabbitMQ | {meta['rabbit_setup'] or 'not run'} |")
L.append(f"| pinning | {meta['pinning']} |")
L.append(f"| load average before / after | {meta['load_before']} / {meta['load_after']} |")
L.append("")
L.append("Busiest processes when the run started (a machine this small is disturbed by anything busy):")
L.append("")
L.append("```")
L.append(meta["others"])
L.append("```")
L.append("")
L.append("## Method")
L.append("")
L.append("- One load client for both brokers, `bench/src/bin/stomp_load.rs`: STOMP 1.2 over WebSocket "
         "(subprotocol `v12.stomp`, no permessage-deflate, heart-beats off), one current-thread tokio "
         "runtime. wsx at `ws://…/stomp`, RabbitMQ at web-stomp's `ws://…/ws` (login guest/guest, host `/`). "
         "Destinations `/topic/NAME` and `/queue/NAME` on both.")
L.append(f"- Fan-out: {meta['subscribers']} subscribers (ack auto) on one topic, subscriber i on node i mod 2, "
         "every SUBSCRIBE confirmed by a RECEIPT before publishing starts; one publisher on node 1. "
         f"\"max rate\": at most {meta['fanout_window']} messages in flight (a message is in flight until "
         f"{meta['subscribers']} deliveries' worth have arrived); \"fixed\": {meta['fanout_rate']} msg/s.")
L.append(f"- Queue: {meta['consumers']} consumers on one queue split over the nodes, ack mode "
         "`client-individual` (one ACK frame per MESSAGE; `prefetch-count:256` for RabbitMQ, the same "
         "window of 256 unacknowledged messages wsx applies), "
         f"{meta['producers']} producer(s) keeping {meta['queue_window']} messages sent and not yet delivered.")
L.append("- Latency: every body carries its send timestamp (taken just before the SEND is written); the "
         "receiver records now − timestamp in an HDR histogram. It includes the client's own queueing: the "
         "client is one thread serving every socket.")
L.append(f"- {meta['warmup']} s warm-up, then {meta['duration']} s measured. Broker CPU = utime+stime "
         "(`/proc/PID/stat`, all threads) of the broker processes over the measured window: wsx nodes + "
         "redis-server (\"w/o Redis\": the wsx nodes alone), RabbitMQ's beam.smp of every node; "
         "÷ deliveries in the window. Lower is better.")
L.append("")

ids = meta["workloads"].split()
brokers = meta["brokers"].split()
def sel(b, w):
    return [r for r in rows if r["broker"] == b and r["workload"] == w and "error" not in r]

L.append("## Results")
L.append("")
L.append("| workload | broker | deliveries/s | p50 latency | p99 latency | CPU per delivery | CPU w/o Redis | broker CPU | client CPU | errors |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
summary = []
for w in ids:
    meds = {}
    for b in brokers:
        rs = sel(b, w)
        failed = len([r for r in rows if r["broker"] == b and r["workload"] == w and "error" in r])
        name = "wsx" if b == "wsx" else "RabbitMQ"
        if not rs:
            L.append(f"| {meta['titles'][w]} | {name} | failed | | | | | | | {failed} runs failed |")
            continue
        m = {
            "rate": med([r["deliveries_per_sec"] for r in rs]),
            "p50": med([r["latency_us"]["p50"] for r in rs]),
            "p99": med([r["latency_us"]["p99"] for r in rs]),
            "cpu": med([r["cpu_us_per_delivery"] for r in rs]),
            "cpu_noaux": med([r["cpu_us_per_delivery_without_aux"] for r in rs]),
            "util": med([r["server_cpu_util"] * 100 for r in rs]),
            "cutil": med([r["client_cpu_util"] * 100 for r in rs]),
        }
        meds[b] = m
        errs = sum(r["errors"] + r["gaps"] for r in rs)
        L.append(f"| {meta['titles'][w]} | {name} | {cell(m['rate'], fmt_rate)} | {cell(m['p50'], fmt_us)} | "
                 f"{cell(m['p99'], fmt_us)} | {cell(m['cpu'], fmt_cpu)} | "
                 f"{cell(m['cpu_noaux'], fmt_cpu) if b == 'wsx' else '–'} | "
                 f"{m['util'][0]:.0f} % | {m['cutil'][0]:.0f} %{' (client-bound)' if m['cutil'][0] >= 90 else ''} | {errs}{' (+' + str(failed) + ' failed runs)' if failed else ''} |")
    if "wsx" in meds and "rabbit" in meds:
        a, r = meds["wsx"], meds["rabbit"]
        summary.append((w, a["rate"][0] / r["rate"][0], a["cpu"][0] / r["cpu"][0], a["cpu_noaux"][0] / r["cpu"][0],
                        r["p50"][0] / a["p50"][0], r["p99"][0] / a["p99"][0]))
L.append("")
L.append("\"broker CPU\" is the brokers' CPU time ÷ wall time (100 % = the one core they share); "
         "\"client CPU\" the load client's: near 100 % the client, not the broker, set the pace. "
         "\"client-bound\": the client's core was saturated, so the broker could have delivered more "
         "(the figure is a lower bound). \"errors\" counts client-side errors plus topic sequence gaps (messages a subscriber never got).")
L.append("")
if summary:
    L.append("## wsx ÷ RabbitMQ")
    L.append("")
    L.append("Target: deliveries/s ratio ≥ 1 at a CPU-per-delivery ratio ≤ 0.5.")
    L.append("")
    L.append("| workload | deliveries/s (wsx ÷ Rabbit) | CPU per delivery (wsx ÷ Rabbit) | same w/o Redis | p50 (Rabbit ÷ wsx) | p99 (Rabbit ÷ wsx) | target met |")
    L.append("|---|---|---|---|---|---|---|")
    for w, rr, cr, cn, l50, l99 in summary:
        ok = "yes" if rr >= 1 and cr <= 0.5 else "no"
        if w == "fanout_rate":
            ok = f"n/a (same fixed rate; CPU {'≤' if cr <= 0.5 else '>'} ½)"
        L.append(f"| {meta['titles'][w]} | **{rr:.2f}×** | **{cr:.2f}×** | {cn:.2f}× | {l50:.2f}× | {l99:.2f}× | {ok} |")
    L.append("")
L.append("## Reading the figures")
L.append("")
L.append("- **CPU per delivery** is the figure other load on the machine disturbs least; deliveries/s depends "
         "on how much of CPU 0 the brokers actually got (\"broker CPU\" under 100 % while messages wait usually "
         "means something else ran on that core; the spread between rounds shows how much) and, for wsx fan-out, on the client keeping up (\"client CPU\").")
L.append(f"- **Latency in the max-rate rows is queueing**: the publisher keeps {meta['fanout_window']} messages "
         f"× {meta['subscribers']} deliveries (queue: {meta['queue_window']} messages) in flight, so p50 ≈ "
         "in-flight ÷ rate. Compare responsiveness in the fixed-rate row, where both brokers deliver the same "
         "load.")
L.append("- RabbitMQ runs the Debian package's defaults apart from ports and one Erlang flag: scheduler "
         "busy-waiting off (`+sbwt none +sbwtdcpu none +sbwtdio none`, as RabbitMQ advises on shared CPUs; "
         "both nodes share a core here and the spinning would otherwise be billed to them). A topic subscription "
         "is an exclusive auto-delete queue per subscriber; `/queue/NAME` is a durable classic queue on one "
         "node (messages sent without `persistent:true`, so kept in memory), consumers on the other node "
         "are served across the cluster link.")
L.append("- wsx: a topic message is one Redis PUBLISH that every node receives and fans out to its own "
         "subscribers, so Redis' share of fan-out CPU is negligible; a queue message is a Redis Streams "
         "entry (add, group read, ack), so Redis takes a large share of the queue CPU (\"CPU w/o Redis\" "
         "leaves it out). Redis runs with persistence off (`--save \"\" --appendonly no`).")
L.append("")
L.append("## Every run")
L.append("")
L.append("| workload | broker | round | deliveries/s | p50 | p99 | CPU/delivery | broker CPU | client CPU | load (1 min) | errors |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if "error" in r:
        L.append(f"| {r['workload']} | {r['broker']} | {r['round']} | {r['error']} | | | | | | | |")
        continue
    L.append(f"| {r['workload']} | {r['broker']} | {r['round']} | {fmt_rate(r['deliveries_per_sec'])} | "
             f"{fmt_us(r['latency_us']['p50'])} | {fmt_us(r['latency_us']['p99'])} | "
             f"{fmt_cpu(r['cpu_us_per_delivery'] or 0)} | {r['server_cpu_util']*100:.0f} % | "
             f"{r['client_cpu_util']*100:.0f} % | {r['load1']} | {r['errors']} err, {r['gaps']} gaps |")
L.append("")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
print(text)
EOF
info "wrote $OUT_MD (raw JSON lines: $RESULTS)"

# shellcheck shell=bash
# STOMP interoperability: two real STOMP clients against the /stomp endpoint of `wsx serve`
# started with --jwt-secret on a free port (and stomp.py against the embedded-broker example,
# crates/wsx-broker/examples/axum_app.rs, see stomp_app_case): @stomp/stompjs 7 over the Node `ws` package
# (scripts/interop/stomp/package.json + package-lock.json, npm ci) and Python's stomp.py 8 over
# websocket-client (scripts/interop/stomp/requirements.txt, in a venv under .tools/).
# stomp_client.mjs prints one line per case, "stomp-interop: <case>: ok" or
# "stomp-interop: <case>: FAIL (why)", stomp_py.py the same with "stomp-py:" (stomp_app.py with
# "stomp-app:"); the step fails on
# any FAIL, on a client without verdict lines, or when the server dies.
# Then stomp_relay_py.py ("stomp-relay:") plays Spring's StompBrokerRelay with stomp.py over
# plain TCP (--stomp-tcp) against a stomp.py client over WebSocket: on the same server, and on
# two nodes sharing a Redis (WSX_TEST_REDIS_URL, or a redis-server started here with
# scripts/test.sh's redis_start; without one the two-node case skips, or fails under CI).
#
# Source after scripts/lib/common.sh; scripts/test.sh runs install_stomp_interop (installer) and
# step_stomp_interop (step "stomp"). Logs go to $REPORTS_DIR/stomp/.
#
# Environment (optional): STOMP_INTEROP_TIMEOUT (seconds for the client, default 60).

STOMP_DIR="$ROOT_DIR/scripts/interop/stomp"
STOMP_INTEROP_TIMEOUT="${STOMP_INTEROP_TIMEOUT:-60}"
STOMP_NODE_READY=0
STOMP_NODE_MISSING=""
STOMP_VENV="${STOMP_VENV:-$TOOLS_DIR/stomp-venv}"
STOMP_PY_READY=0
STOMP_PY_MISSING=""
STOMP_OKS=0

# install_stomp_python: a venv with the pinned stomp.py (scripts/lib/common.sh venv_install).
install_stomp_python() {
    if venv_install "$STOMP_VENV" "$STOMP_DIR/requirements.txt" "stomp, websocket" \
        stomp.py stomp.__version__; then
        STOMP_PY_READY=1
    else
        STOMP_PY_MISSING=$VENV_MISSING
        return 1
    fi
}

# stomp_versions lock|installed: "STOMPJS WS", the versions locked in package-lock.json or
# installed in node_modules (empty when unknown).
stomp_versions() {
    local from=$1
    # shellcheck disable=SC2016 # JavaScript, not shell
    (cd "$STOMP_DIR" && node -e '
        const lock = process.argv[1] === "lock";
        const get = (name) => {
            try {
                // By path: @stomp/stompjs does not export its package.json.
                const file = lock ? "./package-lock.json" : `./node_modules/${name}/package.json`;
                const json = require(file);
                return lock ? json.packages[`node_modules/${name}`].version : json.version;
            } catch (e) {
                return "";
            }
        };
        console.log(`${get("@stomp/stompjs")} ${get("ws")}`);
    ' "$from" 2>/dev/null)
}

# install_stomp_interop: node_modules from package-lock.json (npm ci), unless the locked
# versions are already installed. Only when the stomp step is selected.
install_stomp_interop() {
    selected "stomp" || return 0
    local want have log="$TOOLS_DIR/stomp-npm-ci.log"
    install_stomp_python || err "stomp: ${STOMP_PY_MISSING}"
    command -v node >/dev/null 2>&1 || { STOMP_NODE_MISSING="node not found"; err "stomp: $STOMP_NODE_MISSING"; return 1; }
    command -v npm >/dev/null 2>&1 || { STOMP_NODE_MISSING="npm not found"; err "stomp: $STOMP_NODE_MISSING"; return 1; }
    want="$(stomp_versions lock)"
    have="$(stomp_versions installed)"
    if [[ -z "${want// /}" || "$want" != "$have" ]]; then
        info "npm ci in ${STOMP_DIR#"$ROOT_DIR"/} (node $(node --version); log: ${log#"$ROOT_DIR"/})"
        mkdir -p "$TOOLS_DIR"
        if ! (cd "$STOMP_DIR" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
            tail_log "$log" 20
            STOMP_NODE_MISSING="npm ci in ${STOMP_DIR#"$ROOT_DIR"/} failed"
            err "stomp: $STOMP_NODE_MISSING"
            return 1
        fi
        have="$(stomp_versions installed)"
    fi
    STOMP_NODE_READY=1
    info "@stomp/stompjs and ws: $have (node $(node --version))"
}

# stomp_build NAME CARGO_ARGS...: build with `cargo build CARGO_ARGS...` (debug; the step
# builds with the workspace features `cargo test --workspace --all-features` uses, so that its
# build is reused) and print the path of the executable NAME.
stomp_build() {
    local name=$1 json="$REPORTS_DIR/stomp/build-$1.json" log="$REPORTS_DIR/stomp/build-$1.log"
    shift
    info "cargo build $*" >&2
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    if ! run_limited - "${BUILD_TIMEOUT:-1200}" bash -c 'exec cargo build "${@:3}" \
        --message-format=json-render-diagnostics >"$1" 2>"$2"' _ "$json" "$log" "$@"; then
        tail_log "$log" 60 >&2
        err "building $name failed"
        return 1
    fi
    python3 - "$json" "$name" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m.get("target", {}).get("name") == sys.argv[2]:
        print(m["executable"])
EOF
}

# stomp_verdict CLIENT PREFIX LOG EXIT: print the client's verdict lines from LOG, add its ok
# cases to STOMP_OKS; fails on a FAIL, on no verdict lines, or on a client that did not exit 0.
stomp_verdict() {
    local client=$1 prefix=$2 log=$3 crc=$4 lines oks fails
    lines="$(grep -E "^$prefix: " "$log")"
    [[ -n "$lines" ]] && printf '%s\n' "$lines"
    oks=$(grep -cE "^$prefix: [^:]+: ok\$" "$log")
    fails=$(grep -cE "^$prefix: [^:]+: FAIL" "$log")
    if [[ $crc == 124 || $crc == 137 ]]; then
        err "the $client client timed out after ${STOMP_INTEROP_TIMEOUT}s"
    fi
    STOMP_OKS=$((STOMP_OKS + oks))
    if [[ $crc != 0 || $fails -gt 0 || $oks -eq 0 ]]; then
        tail_log "$log" 30
        err "stomp ($client): $oks ok, $fails failed (client exit $crc)"
        return 1
    fi
}

# stomp_app_case DIR: the embedded-broker example (crates/wsx-broker/examples/axum_app.rs, an
# axum app with /stomp and an /app/greet handler) on a free port, against stomp_app.py (stomp.py
# over websocket-client, login alice: the greeting on /topic/greetings and the welcome on
# /user/queue/replies).
stomp_app_case() {
    local dir=$1 bin port pid crc=0 rc=0
    bin="$(stomp_build axum_app --workspace --all-features --example axum_app | tail -n 1)" \
        || return 1
    [[ -x "$bin" ]] || { err "could not find the built axum_app example ('$bin')"; return 1; }
    port="$(free_port)" || return 1
    bg_start "$dir/axum_app.log" "$((STOMP_INTEROP_TIMEOUT + 60))" "$bin" "127.0.0.1:$port"
    pid=$BG_PID
    if ! wait_port "$port" 30 "$pid"; then
        bg_stop "$pid"
        tail_log "$dir/axum_app.log"
        err "the axum_app example did not listen on 127.0.0.1:$port"
        return 1
    fi
    info "axum_app example on 127.0.0.1:$port; python stomp_app.py (stomp.py over websocket-client)"
    run_limited "$dir/stomp-app.log" "$STOMP_INTEROP_TIMEOUT" "$STOMP_VENV/bin/python" \
        "$STOMP_DIR/stomp_app.py" 127.0.0.1 "$port" || crc=$?
    stomp_verdict "stomp.py (axum_app)" "stomp-app" "$dir/stomp-app.log" "$crc" || rc=1
    if ! bg_alive "$pid"; then
        err "the axum_app example exited during the run"
        rc=1
    fi
    bg_stop "$pid"
    [[ $rc == 0 ]] || tail_log "$dir/axum_app.log" 30
    return $rc
}

# step_stomp_interop: the step.
step_stomp_interop() {
    local dir="$REPORTS_DIR/stomp" bin port tcp_port pid rc=0 secret log
    command -v cargo >/dev/null 2>&1 || { missing "cargo not found"; return; }
    if [[ $STOMP_NODE_READY != 1 ]]; then
        missing "stompjs client not installed (${STOMP_NODE_MISSING:-installer did not run})"
        return
    fi
    if [[ $STOMP_PY_READY != 1 ]]; then
        missing "stomp.py client not installed (${STOMP_PY_MISSING:-installer did not run})"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    bin="$(stomp_build wsx --workspace --all-features --bin wsx | tail -n 1)" || return 1
    [[ -x "$bin" ]] || { err "could not find the built wsx binary ('$bin')"; return 1; }

    secret="stomp-interop-$RANDOM$RANDOM"
    port="$(free_port)" || return 1
    tcp_port="$(free_port)" || return 1
    bg_start "$dir/server.log" "$((2 * STOMP_INTEROP_TIMEOUT + 60))" "$bin" --log-level warn \
        serve --listen "127.0.0.1:$port" --jwt-secret "$secret" --stomp-heartbeat 500,500 \
        --stomp-tcp "127.0.0.1:$tcp_port"
    pid=$BG_PID
    if ! wait_port "$port" 30 "$pid" || ! wait_port "$tcp_port" 30 "$pid"; then
        bg_stop "$pid"
        tail_log "$dir/server.log"
        err "wsx serve did not listen on 127.0.0.1:$port and 127.0.0.1:$tcp_port"
        return 1
    fi
    info "wsx serve on 127.0.0.1:$port (STOMP over TCP on $tcp_port); node stomp_client.mjs (@stomp/stompjs over ws)"
    STOMP_OKS=0
    local client
    for client in stompjs stomp.py stomp-relay; do
        local crc=0
        log="$dir/$client.log"
        case $client in
            stompjs)
                run_limited "$log" "$STOMP_INTEROP_TIMEOUT" node "$STOMP_DIR/stomp_client.mjs" \
                    "ws://127.0.0.1:$port/stomp" "$secret" || crc=$?
                stomp_verdict "$client" stomp-interop "$log" "$crc" || rc=1
                ;;
            stomp.py)
                info "python stomp_py.py (stomp.py over websocket-client)"
                run_limited "$log" "$STOMP_INTEROP_TIMEOUT" "$STOMP_VENV/bin/python" \
                    "$STOMP_DIR/stomp_py.py" 127.0.0.1 "$port" "$secret" || crc=$?
                stomp_verdict "$client" stomp-py "$log" "$crc" || rc=1
                ;;
            stomp-relay)
                info "python stomp_relay_py.py one-node (Spring's relay: stomp.py over TCP)"
                run_limited "$log" "$STOMP_INTEROP_TIMEOUT" "$STOMP_VENV/bin/python" \
                    "$STOMP_DIR/stomp_relay_py.py" one-node "$secret" "127.0.0.1:$tcp_port" \
                    "127.0.0.1:$port" || crc=$?
                stomp_verdict "$client (one node)" stomp-relay "$log" "$crc" || rc=1
                ;;
        esac
    done
    if ! bg_alive "$pid"; then
        err "wsx serve exited during the run"
        rc=1
    fi
    bg_stop "$pid"
    if [[ $rc != 0 ]]; then
        tail_log "$dir/server.log" 30
    fi
    local two=0
    stomp_relay_two_nodes "$bin" "$dir" "$secret" || two=$?
    [[ $two == "$SKIP_RC" ]] && two=0
    [[ $two != 0 ]] && rc=1
    stomp_app_case "$dir" || rc=1
    [[ $rc == 0 ]] || return 1
    info "stomp: $STOMP_OKS cases ok (logs: ${dir#"$ROOT_DIR"/}/)"
}

# stomp_relay_two_nodes BIN DIR SECRET: two `wsx serve` nodes on one Redis (node A with
# --stomp-tcp, node B WebSocket only) and stomp_relay_py.py two-nodes between them. Redis:
# WSX_TEST_REDIS_URL, or one started with redis_start (scripts/test.sh) and stopped after.
stomp_relay_two_nodes() {
    local bin=$1 dir=$2 secret=$3 rc=0 started=0 redis node port_a tcp_a port_b pid_a pid_b crc=0
    if [[ -z "${WSX_TEST_REDIS_URL:-}" ]]; then
        declare -F redis_start >/dev/null || { missing "stomp relay on two nodes: no redis_start (run through scripts/test.sh)"; return; }
        redis_start || return
        started=1
    fi
    redis=$WSX_TEST_REDIS_URL
    port_a="$(free_port)" && tcp_a="$(free_port)" && port_b="$(free_port)" || return 1
    local prefix="wsx-stomp-relay-$RANDOM$RANDOM:"
    for node in a b; do
        local port=$port_a extra=(--stomp-tcp "127.0.0.1:$tcp_a")
        [[ $node == b ]] && port=$port_b extra=()
        bg_start "$dir/node-$node.log" "$((STOMP_INTEROP_TIMEOUT + 60))" "$bin" --log-level warn \
            serve --listen "127.0.0.1:$port" --jwt-secret "$secret" --stomp-heartbeat 500,500 \
            --broker "$redis" --redis-prefix "$prefix" --node-id "relay-$node" "${extra[@]}"
        [[ $node == a ]] && pid_a=$BG_PID || pid_b=$BG_PID
    done
    if ! wait_port "$port_a" 30 "$pid_a" || ! wait_port "$tcp_a" 30 "$pid_a" \
        || ! wait_port "$port_b" 30 "$pid_b"; then
        err "the two wsx serve nodes did not listen"
        rc=1
    else
        info "python stomp_relay_py.py two-nodes (TCP on node A, WebSocket on node B, $redis)"
        run_limited "$dir/stomp-relay-two-nodes.log" "$STOMP_INTEROP_TIMEOUT" \
            "$STOMP_VENV/bin/python" "$STOMP_DIR/stomp_relay_py.py" two-nodes "$secret" \
            "127.0.0.1:$tcp_a" "127.0.0.1:$port_b" || crc=$?
        stomp_verdict "stomp-relay (two nodes)" stomp-relay "$dir/stomp-relay-two-nodes.log" \
            "$crc" || rc=1
        for node in "$pid_a" "$pid_b"; do
            bg_alive "$node" || { err "a wsx serve node exited during the run"; rc=1; }
        done
    fi
    bg_stop "$pid_a"
    bg_stop "$pid_b"
    if [[ $rc != 0 ]]; then
        tail_log "$dir/node-a.log" 20
        tail_log "$dir/node-b.log" 20
    fi
    [[ $started == 1 ]] && redis_stop
    return "$rc"
}

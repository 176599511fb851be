# shellcheck shell=bash
# Interoperability tests of wsx against peers we did not write: Python `websockets`
# (scripts/interop/requirements.txt, in a venv under .tools/) and Node `ws`
# (scripts/interop/package.json + package-lock.json, npm ci). Both directions, with and
# without permessage-deflate; what is exchanged is in scripts/interop/vectors.md.
#
# Source after scripts/lib/common.sh; scripts/test.sh calls interop_install (installer) and
# interop_run (step "interop"). Each sub-test prints one line
#   interop: <peer> <direction> <variant>: ok (...) | FAIL (why)
# and its log goes to $REPORTS_DIR/interop/.
#
# Environment (optional): INTEROP_VENV (default .tools/interop-venv), INTEROP_TIMEOUT (seconds
# per sub-test, default 60), INTEROP_PEERS (default "python-websockets node-ws").

INTEROP_DIR="$ROOT_DIR/scripts/interop"
INTEROP_VENV="${INTEROP_VENV:-$TOOLS_DIR/interop-venv}"
INTEROP_TIMEOUT="${INTEROP_TIMEOUT:-60}"
INTEROP_PEERS="${INTEROP_PEERS:-python-websockets node-ws}"

INTEROP_PY_READY=0   # 1 once the venv has the pinned websockets
INTEROP_NODE_READY=0 # 1 once node_modules has the locked ws
INTEROP_PY_MISSING=""
INTEROP_NODE_MISSING=""

# ---------------------------------------------------------------------------
# install

# interop_install_python: a venv with the pinned websockets (scripts/lib/common.sh venv_install).
interop_install_python() {
    if venv_install "$INTEROP_VENV" "$INTEROP_DIR/requirements.txt" "websockets, h2" \
        "python websockets" websockets.__version__; then
        INTEROP_PY_READY=1
    else
        INTEROP_PY_MISSING=$VENV_MISSING
        return 1
    fi
}

# interop_install_node: node_modules from package-lock.json (npm ci), unless the
# locked ws version is already there.
interop_install_node() {
    local want have log="$TOOLS_DIR/interop-npm-ci.log"
    command -v node >/dev/null 2>&1 || { INTEROP_NODE_MISSING="node not found"; return 1; }
    command -v npm >/dev/null 2>&1 || { INTEROP_NODE_MISSING="npm not found"; return 1; }
    want="$(cd "$INTEROP_DIR" && node -p "require('./package-lock.json').packages['node_modules/ws'].version" 2>/dev/null)"
    have="$(cd "$INTEROP_DIR" && node -p "require('ws/package.json').version" 2>/dev/null)"
    if [[ -z "$want" || "$want" != "$have" ]]; then
        info "npm ci in ${INTEROP_DIR#"$ROOT_DIR"/} (node $(node --version); log: ${log#"$ROOT_DIR"/})"
        mkdir -p "$TOOLS_DIR"
        if ! (cd "$INTEROP_DIR" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
            tail_log "$log" 20
            INTEROP_NODE_MISSING="npm ci in ${INTEROP_DIR#"$ROOT_DIR"/} failed"
            return 1
        fi
        have="$(cd "$INTEROP_DIR" && node -p "require('ws/package.json').version" 2>/dev/null)"
    fi
    INTEROP_NODE_READY=1
    info "node ws: $have (node $(node --version))"
}

# interop_install: both peers; returns non-zero when either could not be set up
# (the step then reports it through `missing`).
interop_install() {
    local rc=0
    interop_install_python || { err "interop: ${INTEROP_PY_MISSING}"; rc=1; }
    interop_install_node || { err "interop: ${INTEROP_NODE_MISSING}"; rc=1; }
    return $rc
}

# ---------------------------------------------------------------------------
# wsx binaries

INTEROP_ECHO_BIN=""
INTEROP_CLIENT_BIN=""
INTEROP_WSX_BIN=""

# interop_build: cargo build --release the echo_server and interop_client examples.
interop_build() {
    local log="$REPORTS_DIR/interop/build.log" json="$REPORTS_DIR/interop/build.json" paths
    command -v cargo >/dev/null 2>&1 || { missing "cargo not found"; return; }
    info "cargo build --release -p wsx --example echo_server --example interop_client"
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    if ! run_limited - "${BUILD_TIMEOUT:-1200}" bash -c 'exec cargo build --release -p wsx \
        --example echo_server --example interop_client \
        --message-format=json-render-diagnostics >"$1" 2>"$2"' _ "$json" "$log"; then
        tail_log "$log" 60
        err "building the wsx examples failed"
        return 1
    fi
    paths="$(python3 - "$json" <<'EOF'
import json, sys
exe = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and "example" in m.get("target", {}).get("kind", []):
        exe[m["target"]["name"]] = m["executable"]
print(exe.get("echo_server", ""))
print(exe.get("interop_client", ""))
EOF
)"
    { read -r INTEROP_ECHO_BIN; read -r INTEROP_CLIENT_BIN; } <<<"$paths"
    # The wsx binary too: their clients also talk to `wsx serve`'s /ws/echo.
    info "cargo build --release -p wsx-cli"
    if ! run_limited "$log" "${BUILD_TIMEOUT:-1200}" cargo build --release -p wsx-cli; then
        tail_log "$log" 60
        err "building wsx-cli failed"
        return 1
    fi
    INTEROP_WSX_BIN="${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/wsx"
    if [[ ! -x "$INTEROP_ECHO_BIN" || ! -x "$INTEROP_CLIENT_BIN" ]]; then
        err "could not find the built examples (echo_server='$INTEROP_ECHO_BIN', interop_client='$INTEROP_CLIENT_BIN')"
        return 1
    fi
}

# ---------------------------------------------------------------------------
# sub-tests

INTEROP_OK=0
INTEROP_FAILED=0
INTEROP_LINES=()

# interop_verdict PEER DIRECTION VARIANT RC LOG: print the sub-test's line.
interop_verdict() {
    local peer=$1 dir=$2 variant=$3 rc=$4 log=$5 last line
    last="$(grep -E '^(OK|FAIL): ' "$log" 2>/dev/null | tail -n 1)"
    if [[ $rc == 0 && "$last" == OK:* ]]; then
        line="interop: $peer $dir $variant: ok (${last#OK: })"
        INTEROP_OK=$((INTEROP_OK + 1))
    else
        local why
        if [[ "$last" == FAIL:* ]]; then
            why="${last#FAIL: }"
        elif [[ $rc == 124 || $rc == 137 ]]; then
            why="timed out after ${INTEROP_TIMEOUT}s"
        else
            why="exit $rc without a verdict"
        fi
        line="interop: $peer $dir $variant: FAIL ($why)"
        INTEROP_FAILED=$((INTEROP_FAILED + 1))
    fi
    echo "$line"
    INTEROP_LINES+=("$line")
    if [[ "$line" == *": FAIL ("* ]]; then
        tail_log "$log" 30
    fi
}

# interop_peer_client PEER VARIANT URL [SERVER]: the peer's client against our echo server
# (SERVER names it in the verdict: echo_server by default, or wsx-serve).
interop_peer_client() {
    local peer=$1 variant=$2 url=$3 server=${4:-echo_server} log rc=0 cmd=()
    log="$REPORTS_DIR/interop/$peer-client-$variant-$server.log"
    case $peer in
        python-websockets) cmd=("$INTEROP_VENV/bin/python" "$INTEROP_DIR/py_peer.py" client "$url" --variant "$variant") ;;
        node-ws) cmd=(node "$INTEROP_DIR/js_peer.mjs" client "$url" --variant "$variant") ;;
    esac
    run_limited "$log" "$INTEROP_TIMEOUT" "${cmd[@]}" || rc=$?
    interop_verdict "$peer" "their-client->$server" "$variant" "$rc" "$log"
}

# interop_wsx_client PEER VARIANT URL ARGS...: our interop_client against the peer's server.
interop_wsx_client() {
    local peer=$1 variant=$2 url=$3 log rc=0
    shift 3
    log="$REPORTS_DIR/interop/wsx-client-$peer-$variant.log"
    run_limited "$log" "$INTEROP_TIMEOUT" "$INTEROP_CLIENT_BIN" "$url" "$@" || rc=$?
    interop_verdict "$peer" "wsx-client->their-server" "$variant" "$rc" "$log"
}

# interop_start LOG PREFIX CMD...: start CMD with "${PREFIX}PORT" appended, PORT
# a free port, and wait until it listens. Sets INTEROP_PORT and INTEROP_PID.
interop_start() {
    local log=$1 prefix=$2
    shift 2
    INTEROP_PORT="$(free_port)" || return 1
    bg_start "$log" "$((INTEROP_TIMEOUT * 20))" "$@" "$prefix$INTEROP_PORT"
    INTEROP_PID=$BG_PID
    if ! wait_port "$INTEROP_PORT" 30 "$INTEROP_PID"; then
        bg_stop "$INTEROP_PID"
        tail_log "$log"
        err "server did not listen on 127.0.0.1:$INTEROP_PORT: $*"
        return 1
    fi
}

# Their clients against wsx's echo_server (compression on, and WSX_COMPRESSION=off).
interop_their_clients() {
    local peers=("$@") on_pid off_pid on_url off_url peer variant dir="$REPORTS_DIR/interop"
    interop_start "$dir/echo_server.log" 127.0.0.1: "$INTEROP_ECHO_BIN" || return 1
    on_pid=$INTEROP_PID
    on_url="ws://127.0.0.1:$INTEROP_PORT/"
    if ! interop_start "$dir/echo_server-off.log" 127.0.0.1: env WSX_COMPRESSION=off "$INTEROP_ECHO_BIN"; then
        bg_stop "$on_pid"
        return 1
    fi
    off_pid=$INTEROP_PID
    off_url="ws://127.0.0.1:$INTEROP_PORT/"
    info "wsx echo_server on ${on_url} (deflate on) and ${off_url} (WSX_COMPRESSION=off)"
    for peer in "${peers[@]}"; do
        for variant in deflate-default deflate-client-bits-10 deflate-server-bits-10 deflate-server-nct \
            no-deflate-client; do
            interop_peer_client "$peer" "$variant" "$on_url"
        done
        interop_peer_client "$peer" no-deflate-server "$off_url"
    done
    local rc=0 serve_pid
    # And `wsx serve` itself: its /ws/echo route, compression on by default.
    if interop_start "$dir/wsx-serve.log" 127.0.0.1: "$INTEROP_WSX_BIN" --log-level error serve --listen; then
        serve_pid=$INTEROP_PID
        info "wsx serve on ws://127.0.0.1:$INTEROP_PORT/ws/echo"
        for peer in "${peers[@]}"; do
            for variant in deflate-default no-deflate-client; do
                interop_peer_client "$peer" "$variant" "ws://127.0.0.1:$INTEROP_PORT/ws/echo" wsx-serve
            done
        done
        bg_alive "$serve_pid" || { err "wsx serve exited during the run"; tail_log "$dir/wsx-serve.log"; rc=1; }
        bg_stop "$serve_pid"
    else
        rc=1
    fi
    bg_alive "$on_pid" || { err "echo_server (deflate on) exited during the run"; tail_log "$dir/echo_server.log"; rc=1; }
    bg_alive "$off_pid" || { err "echo_server (deflate off) exited during the run"; tail_log "$dir/echo_server-off.log"; rc=1; }
    bg_stop "$on_pid"
    bg_stop "$off_pid"
    return $rc
}

# The wsx interop_client against each peer's echo server, one server per server variant.
interop_their_servers() {
    local peer server_variant url pid cmd=() dir="$REPORTS_DIR/interop" rc=0 log
    for peer in "$@"; do
        for server_variant in deflate-default deflate-server-nct deflate-client-bits-10 no-deflate-server; do
            case $peer in
                python-websockets) cmd=("$INTEROP_VENV/bin/python" "$INTEROP_DIR/py_peer.py" server --variant "$server_variant" --port) ;;
                node-ws) cmd=(node "$INTEROP_DIR/js_peer.mjs" server --variant "$server_variant" --port) ;;
            esac
            log="$dir/$peer-server-$server_variant.log"
            interop_start "$log" "" "${cmd[@]}" || { rc=1; continue; }
            pid=$INTEROP_PID
            url="ws://127.0.0.1:$INTEROP_PORT/"
            case $server_variant in
                deflate-default)
                    interop_wsx_client "$peer" deflate-default "$url"
                    interop_wsx_client "$peer" deflate-takeover "$url" --context-takeover
                    interop_wsx_client "$peer" deflate-server-bits-10 "$url" --server-max-window-bits 10 \
                        --expect-param server_max_window_bits=10
                    interop_wsx_client "$peer" no-deflate-client "$url" --compression off
                    ;;
                deflate-server-nct)
                    # wsx does not ask for it: the server must impose it, and wsx accept that.
                    interop_wsx_client "$peer" deflate-server-nct "$url" --context-takeover \
                        --expect-param server_no_context_takeover
                    ;;
                deflate-client-bits-10)
                    interop_wsx_client "$peer" deflate-client-bits-10 "$url" \
                        --expect-param client_max_window_bits=10
                    interop_wsx_client "$peer" deflate-client-bits-10-takeover "$url" --context-takeover \
                        --expect-param client_max_window_bits=10
                    ;;
                no-deflate-server)
                    interop_wsx_client "$peer" no-deflate-server "$url" --expect-deflate no
                    ;;
            esac
            if ! bg_alive "$pid"; then
                err "$peer echo server ($server_variant) exited during the run"
                tail_log "$log"
                rc=1
            fi
            bg_stop "$pid"
        done
    done
    return $rc
}

# interop_run: the step. Fails when any sub-test fails; a peer that could not be
# installed is `missing` (a failure under CI, a skip otherwise).
interop_run() {
    local peers=() p rc=0 t0
    INTEROP_OK=0
    INTEROP_FAILED=0
    INTEROP_LINES=()
    rm -rf "$REPORTS_DIR/interop"
    mkdir -p "$REPORTS_DIR/interop"
    for p in $INTEROP_PEERS; do
        case $p in
            python-websockets) [[ $INTEROP_PY_READY == 1 ]] && peers+=("$p") ;;
            node-ws) [[ $INTEROP_NODE_READY == 1 ]] && peers+=("$p") ;;
            *) err "unknown interop peer $p (INTEROP_PEERS)"; return 1 ;;
        esac
    done
    if [[ ${#peers[@]} -eq 0 ]]; then
        missing "no interop peer is installed (${INTEROP_PY_MISSING:-python ok}; ${INTEROP_NODE_MISSING:-node ok})"
        return
    fi
    interop_build || return
    t0=$(now_s)
    interop_their_clients "${peers[@]}" || rc=1
    interop_their_servers "${peers[@]}" || rc=1
    info "interop: $INTEROP_OK ok, $INTEROP_FAILED failed in $(fmt_duration $(($(now_s) - t0))) (logs: ${REPORTS_DIR#"$ROOT_DIR"/}/interop/)"
    info "interop: fragmented messages go both ways (peers' clients; interop_client with WebSocket::feed_fragment)"
    [[ $INTEROP_FAILED -gt 0 ]] && rc=1
    [[ $rc != 0 ]] && return 1
    if [[ ${#peers[@]} -lt $(wc -w <<<"$INTEROP_PEERS") ]]; then
        missing "not every interop peer is installed (${INTEROP_PY_MISSING:-python ok}; ${INTEROP_NODE_MISSING:-node ok})"
        return
    fi
    return 0
}

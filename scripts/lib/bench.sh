# scripts/lib/bench.sh: what scripts/bench.sh and scripts/bench_profile.sh share: the echo
# workloads, where each implementation's echo server binary is, which of them do
# permessage-deflate, and how servers and clients are pinned. Sourced, not run; expects BIN_DIR
# (bench/target/release).

# id | connections | payload bytes | text/binary | compression | title
ALL_WORKLOADS=(
    "c100_s20_text|100|20|text|off|100 conn × 20 B text"
    "c10_s1k_text|10|1024|text|off|10 conn × 1 KiB text"
    "c200_s16k_text|200|16384|text|off|200 conn × 16 KiB text"
    "c500_s16k_text|500|16384|text|off|500 conn × 16 KiB text"
    "c16_s1m_binary|16|1048576|binary|off|16 conn × 1 MiB binary"
    "c100_s1k_deflate|100|1024|text|on|100 conn × 1 KiB text, permessage-deflate"
)

# select_workloads IDS: set SELECTED_WORKLOADS to the entries of ALL_WORKLOADS whose id is in
# the space-separated IDS (all of them when IDS is empty).
select_workloads() {
    local w id
    SELECTED_WORKLOADS=()
    for w in "${ALL_WORKLOADS[@]}"; do
        id=${w%%|*}
        if [[ -z "$1" || " $1 " == *" $id "* ]]; then
            SELECTED_WORKLOADS+=("$w")
        fi
    done
}

# server_bin NAME: the echo server binary of an implementation (fails for an unknown name).
server_bin() {
    case $1 in
        wsx) echo "$BIN_DIR/echo_wsx" ;;
        tokio-tungstenite) echo "$BIN_DIR/echo_tungstenite" ;;
        tokio-websockets) echo "$BIN_DIR/echo_tokio_websockets" ;;
        fastwebsockets) echo "$BIN_DIR/echo_fastwebsockets" ;;
        sockudo-ws) echo "$BIN_DIR/echo_sockudo" ;;
        raw) echo "$BIN_DIR/echo_raw" ;;
        *) return 1 ;;
    esac
}

# Implementations that can negotiate permessage-deflate.
DEFLATE_CAPABLE="wsx sockudo-ws"

# supports_deflate NAME: whether the implementation can negotiate permessage-deflate.
supports_deflate() { [[ " $DEFLATE_CAPABLE " == *" $1 "* ]]; }

# echo_pinning NICE: the echo server on CPU 0 and its load client on CPU 1 (with taskset, when
# there are two CPUs or more), both at niceness NICE (0: unchanged). Sets SERVER_PIN and
# CLIENT_PIN (command prefixes) and PINNING (what was done, for the report).
echo_pinning() {
    SERVER_PIN=()
    CLIENT_PIN=()
    PINNING="none (taskset missing or a single CPU)"
    if command -v taskset >/dev/null 2>&1 && (($(nproc) >= 2)); then
        SERVER_PIN=(taskset -c 0)
        CLIENT_PIN=(taskset -c 1)
        PINNING="server on CPU 0, client on CPU 1 (taskset)"
    fi
    if [[ "$1" != 0 ]]; then
        SERVER_PIN=(nice -n "$1" "${SERVER_PIN[@]}")
        CLIENT_PIN=(nice -n "$1" "${CLIENT_PIN[@]}")
        PINNING="$PINNING; servers and clients at nice $1"
    fi
}

# The scripts that run one server at a time (bench_fanout.sh, bench_fanout_peers.sh,
# bench_http2.sh) keep its pid in SRV_PID; stop_run_server stops it, and runs on exit
# (`trap stop_run_server EXIT`).
SRV_PID=""
stop_run_server() {
    [[ -n "$SRV_PID" ]] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    SRV_PID=""
}

# scripts/lib/bench.sh: what scripts/bench.sh and scripts/bench_profile.sh share: the echo
# workloads and where each implementation's echo server binary is. Sourced, not run; expects
# BIN_DIR (bench/target/release).

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


#!/usr/bin/env bash
# scripts/soak.sh: two `wsx serve` nodes on one Redis under mixed load with connection churn for
# SOAK_SECONDS, the resident memory (VmRSS) of both nodes and of Redis sampled all along, and the
# result (is it flat?) written to bench/results/soak.md and into bench/RESULTS.md (its "Soak"
# section, replaced on every run). Not part of scripts/test.sh: it takes ten minutes.
#
# The load, all at once, each part on both nodes:
#   echo   `wsx bench` runs of ECHO_CONNS new connections each, ECHO_RUN seconds long, one after
#          the other, alternating nodes and plain / permessage-deflate: connections churn
#   chat   bench/src/bin/chat_load.rs: CHAT_CLIENTS clients in one room talking every 500 ms,
#          each leaving and coming back every 3-12 s
#   stomp  bench/src/bin/stomp_load.rs, one run after the other, STOMP_RUN seconds each: a topic
#          fan-out (STOMP_SUBSCRIBERS subscribers, 50 msg/s), then a queue (4 consumers,
#          alternately ack auto and client-individual); every run connects anew
# Echo and queue runs go as fast as they can; chat and the topic fan-out keep a fixed pace.
#
# Environment (defaults in brackets):
#   SOAK_SECONDS       how long the load runs                              [600]
#   SAMPLE_SECONDS     how often RSS is sampled                            [5]
#   ECHO_CONNS ECHO_RUN  per `wsx bench` run                               [50, 5]
#   CHAT_CLIENTS       chat clients                                        [60]
#   STOMP_SUBSCRIBERS STOMP_RUN                                            [100, 20]
#   SKIP_BUILD=1       use the release binaries already built
#   OUT_MD             the report                      [bench/results/soak.md]
#   RESULTS_MD         where the report's section goes  [bench/RESULTS.md; "" for none]
#
# Exit status: 0 when the run completed (the verdict on flatness is in the report), 1 when a
# node died or the setup failed.
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-5}
ECHO_CONNS=${ECHO_CONNS:-50}
ECHO_RUN=${ECHO_RUN:-5}
CHAT_CLIENTS=${CHAT_CLIENTS:-60}
STOMP_SUBSCRIBERS=${STOMP_SUBSCRIBERS:-100}
STOMP_RUN=${STOMP_RUN:-20}
OUT_MD=${OUT_MD:-$ROOT_DIR/bench/results/soak.md}
RESULTS_MD=${RESULTS_MD-$ROOT_DIR/bench/RESULTS.md}
# Every process here is stopped at the end; the budget only bounds a run that hangs.
TEST_BUDGET=$((SOAK_SECONDS + 3600))

BENCH_DIR="$ROOT_DIR/bench"
WSX="$ROOT_DIR/target/release/wsx"
STOMP_LOAD="$BENCH_DIR/target/release/stomp_load"
CHAT_LOAD="$BENCH_DIR/target/release/chat_load"
RUN_DIR="$BENCH_DIR/target/soak-run-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN_DIR"
install_cleanup_trap

section "install + build"
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    (cd "$ROOT_DIR" && cargo build --release -p wsx-cli)
    (cd "$BENCH_DIR" && cargo build --release --bin stomp_load --bin chat_load)
fi
for bin in "$WSX" "$STOMP_LOAD" "$CHAT_LOAD"; do
    [[ -x "$bin" ]] || { err "$bin is missing"; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

section "services"
redis_port=$(free_port)
bg_start "$RUN_DIR/redis.log" "$TEST_BUDGET" \
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
REDIS_PID=$BG_PID
wait_port "$redis_port" 30 "$REDIS_PID"
URLS=()
NODE_PIDS=()
for node in a b; do
    port=$(free_port)
    bg_start "$RUN_DIR/node-$node.log" "$TEST_BUDGET" "$WSX" serve --listen "127.0.0.1:$port" \
        --broker "redis://127.0.0.1:$redis_port" --node-id "soak-$node" --log-level warn
    NODE_PIDS+=("$BG_PID")
    wait_port "$port" 30 "$BG_PID"
    URLS+=("ws://127.0.0.1:$port")
done
# The processes whose memory is sampled: timeout(1) runs each command as its child.
pid_of() { pgrep -P "$1" | head -1; }
WATCH=("node-a:$(pid_of "${NODE_PIDS[0]}")" "node-b:$(pid_of "${NODE_PIDS[1]}")" "redis:$(pid_of "$REDIS_PID")")
info "nodes ${URLS[*]}, redis 127.0.0.1:$redis_port; sampling ${WATCH[*]}"

END=$(($(now_s) + SOAK_SECONDS))
export END

section "load for ${SOAK_SECONDS}s"
echo_loop() {
    local i=0 url flags
    while (($(now_s) + ECHO_RUN < END)); do
        url=${URLS[$((i % 2))]}
        flags=(--compression off)
        ((i % 4 >= 2)) && flags=(--compression on)
        "$WSX" bench "$url/ws/echo" -c "$ECHO_CONNS" -d "$ECHO_RUN" -w 0 --json "${flags[@]}" \
            >>"$RUN_DIR/echo.jsonl" 2>>"$RUN_DIR/echo.err" || { echo "{\"failed\": $i}" >>"$RUN_DIR/echo.jsonl"; sleep 1; }
        i=$((i + 1))
    done
}
stomp_loop() {
    local i=0 ack
    while (($(now_s) + STOMP_RUN + 5 < END)); do
        "$STOMP_LOAD" fanout --url "${URLS[0]}/stomp" --url "${URLS[1]}/stomp" --subscribers "$STOMP_SUBSCRIBERS" \
            --rate 50 --window 1000 --duration "$STOMP_RUN" --warmup 0 --destination "soak.$((i % 3))" \
            >>"$RUN_DIR/stomp.jsonl" 2>>"$RUN_DIR/stomp.err" || { echo "{\"failed\": \"fanout $i\"}" >>"$RUN_DIR/stomp.jsonl"; sleep 1; }
        ack=auto
        ((i % 2)) && ack=client-individual
        "$STOMP_LOAD" queue --url "${URLS[0]}/stomp" --url "${URLS[1]}/stomp" --consumers 4 --window 200 \
            --ack "$ack" --duration "$STOMP_RUN" --warmup 0 --destination "soak.q$((i % 3))" \
            >>"$RUN_DIR/stomp.jsonl" 2>>"$RUN_DIR/stomp.err" || { echo "{\"failed\": \"queue $i\"}" >>"$RUN_DIR/stomp.jsonl"; sleep 1; }
        i=$((i + 1))
    done
}
sample_loop() {
    local t0 entry name pid rss
    t0=$(now_s)
    echo "seconds,process,rss_kib" >"$RUN_DIR/rss.csv"
    while (($(now_s) <= END)); do
        for entry in "${WATCH[@]}"; do
            name=${entry%%:*}
            pid=${entry#*:}
            rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "")
            echo "$(($(now_s) - t0)),$name,${rss:-dead}" >>"$RUN_DIR/rss.csv"
        done
        sleep "$SAMPLE_SECONDS"
    done
}

bg_start "$RUN_DIR/echo.log" "$TEST_BUDGET" bash -c "$(declare -f now_s echo_loop); URLS=(${URLS[*]}); WSX=$WSX RUN_DIR=$RUN_DIR ECHO_CONNS=$ECHO_CONNS ECHO_RUN=$ECHO_RUN; echo_loop"
ECHO_PID=$BG_PID
bg_start "$RUN_DIR/stomp.log" "$TEST_BUDGET" bash -c "$(declare -f now_s stomp_loop); URLS=(${URLS[*]}); STOMP_LOAD=$STOMP_LOAD RUN_DIR=$RUN_DIR STOMP_SUBSCRIBERS=$STOMP_SUBSCRIBERS STOMP_RUN=$STOMP_RUN; stomp_loop"
STOMP_PID=$BG_PID
bg_start "$RUN_DIR/chat.json" "$TEST_BUDGET" "$CHAT_LOAD" --url "${URLS[0]}" --url "${URLS[1]}" \
    --clients "$CHAT_CLIENTS" --duration "$SOAK_SECONDS"
CHAT_PID=$BG_PID
sample_loop
for pid in "$ECHO_PID" "$STOMP_PID" "$CHAT_PID"; do
    wait "$pid" 2>/dev/null || true
    bg_forget "$pid"
done

alive=1
for pid in "${NODE_PIDS[@]}"; do
    bg_alive "$pid" || { err "a wsx node died (see $RUN_DIR/node-*.log)"; alive=0; }
done

section "report"
mkdir -p "$(dirname "$OUT_MD")"
STAMP="$(date -u +'%Y-%m-%d %H:%M') UTC, commit $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
python3 - "$RUN_DIR" "$SOAK_SECONDS" "$OUT_MD" "$STAMP" <<'EOF'
import csv, json, sys
run, seconds, out, stamp = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def jsonl(name):
    rows = []
    try:
        for line in open(f"{run}/{name}"):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows

series = {}
for row in csv.DictReader(open(f"{run}/rss.csv")):
    if row["rss_kib"] != "dead":
        series.setdefault(row["process"], []).append((int(row["seconds"]), int(row["rss_kib"])))

def mib(kib):
    return f"{kib / 1024:.1f}"

lines = [f"## Soak: 2 nodes + Redis, {seconds // 60} min of mixed load with connection churn", ""]
lines.append(f"Run of {stamp}, generated by `scripts/soak.sh`: echo (`wsx bench` runs of fresh connections, plain and")
lines.append("permessage-deflate), chat (`chat_load`: clients leaving and rejoining every 3-12 s) and STOMP")
lines.append("(`stomp_load`: topic fan-out and queues, ack auto and client-individual, reconnecting every run)")
lines.append("on both nodes at once. VmRSS in MiB; \"after warm-up\" is the first sample at or past 60 s;")
lines.append("the slope is a least-squares fit over the second half of the run.")
lines.append("")
lines.append("| process | after warm-up | max | end | end − after warm-up | slope, 2nd half (MiB/min) |")
lines.append("|---|---|---|---|---|---|")
flat = True
for name, pts in series.items():
    base = next((v for t, v in pts if t >= 60), pts[0][1])
    peak = max(v for _, v in pts)
    end = pts[-1][1]
    half = [(t, v) for t, v in pts if t >= pts[-1][0] / 2]
    n = len(half)
    slope = 0.0
    if n >= 2:
        mt = sum(t for t, _ in half) / n
        mv = sum(v for _, v in half) / n
        den = sum((t - mt) ** 2 for t, _ in half)
        slope = sum((t - mt) * (v - mv) for t, v in half) / den * 60 / 1024 if den else 0.0
    if name.startswith("node") and (end - base > 32 * 1024 or slope > 1.0):
        flat = False
    lines.append(f"| {name} | {mib(base)} | {mib(peak)} | {mib(end)} | {mib(end - base)} | {slope:+.2f} |")
lines.append("")
echo = jsonl("echo.jsonl")
stomp = jsonl("stomp.jsonl")
chat = jsonl("chat.json")
echo_ok = [r for r in echo if "failed" not in r]
msgs = sum(int(r.get("messages", 0) or 0) for r in echo_ok)
lines.append(f"Load: {len(echo_ok)} echo runs ({msgs} messages echoed, {len(echo) - len(echo_ok)} runs failed), "
             f"{len(stomp)} STOMP runs ({sum(1 for r in stomp if 'failed' in r)} failed, "
             f"{sum(int(r.get('deliveries', 0) or 0) for r in stomp)} deliveries in their measured windows, "
             f"{sum(int(r.get('errors_total', 0) or 0) for r in stomp)} client errors)"
             + (f", chat: {chat[0]['connections']} connections, {chat[0]['sent']} messages sent, "
                f"{chat[0]['received']} received, {chat[0]['errors']} errors" if chat else ", chat: no report")
             + ".")
lines.append("")
lines.append("Verdict: " + ("**flat** (each node grew by at most 32 MiB after warm-up and less than 1 MiB/min in the second half)."
                            if flat else "**not flat**: see the table."))
lines.append("")
lines.append("RSS over time (MiB, one sample a minute):")
lines.append("")
names = list(series)
lines.append("| s | " + " | ".join(names) + " |")
lines.append("|---|" + "---|" * len(names))
by_t = {}
for name, pts in series.items():
    for t, v in pts:
        by_t.setdefault(t, {})[name] = v
last_min = -1
for t in sorted(by_t):
    if t // 60 != last_min or t == max(by_t):
        last_min = t // 60
        lines.append(f"| {t} | " + " | ".join(mib(by_t[t][n]) if n in by_t[t] else "–" for n in names) + " |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

if [[ -n "$RESULTS_MD" && -f "$RESULTS_MD" ]]; then
    # Replace the Soak section (from its heading to the next "## " heading or the end).
    python3 - "$RESULTS_MD" "$OUT_MD" <<'EOF'
import sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
start = text.find("\n## Soak: ")
if start >= 0:
    nxt = text.find("\n## ", start + 1)
    text = text[:start] + (text[nxt:] if nxt >= 0 else "\n")
open(path, "w").write(text.rstrip("\n") + "\n\n" + section)
EOF
    info "soak section written to $RESULTS_MD"
fi
info "raw data in $RUN_DIR"
((alive)) || exit 1

# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/autobahn.sh.
# Source this file; it defines functions and a few globals, runs nothing.
#
# Conventions:
#   - Steps and installers return 0 on success, 1 on failure and
#     $SKIP_RC (77) when something they need is missing outside CI.
#   - Every background process is started through `bg_start` so the EXIT
#     trap installed by `install_cleanup_trap` can stop it, on success and
#     on failure alike.

ROOT_DIR="${ROOT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
REPORTS_DIR="${REPORTS_DIR:-$ROOT_DIR/reports}"
TOOLS_DIR="${TOOLS_DIR:-$ROOT_DIR/.tools}"
SKIP_RC=77

# cargo may live in ~/.cargo/bin without being on PATH (fresh shells, CI).
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    export PATH
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
export DEBIAN_FRONTEND=noninteractive

# now_s: seconds since the epoch (integer).
now_s() { printf '%(%s)T' -1; }

# One deadline for the whole run (shared with nested scripts through the
# environment): every time limit is cut to what is left of it, so the run
# ends, with its summary, before CI's 90 minutes.
TEST_DEADLINE="${TEST_DEADLINE:-$(($(now_s) + ${TEST_BUDGET:-5100}))}"
export TEST_DEADLINE

# time_left: seconds until TEST_DEADLINE (may be <= 0).
time_left() { echo $((TEST_DEADLINE - $(now_s))); }

is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

section() {
    printf '\n==================== %s ====================\n' "$*"
}

info() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }
warn() { printf '[%(%H:%M:%S)T] WARNING: %s\n' -1 "$*" >&2; }
err()  { printf '[%(%H:%M:%S)T] ERROR: %s\n' -1 "$*" >&2; }

# missing WHAT: report a missing tool. Under CI that is a failure (1),
# otherwise the caller should skip ($SKIP_RC).
missing() {
    if is_ci; then
        err "$* (CI=true: a missing tool is a failure)"
        return 1
    fi
    warn "$* -- skipping (set CI=true to make this a failure)"
    return "$SKIP_RC"
}

# fmt_duration SECONDS -> "1m23s"
fmt_duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# disk_free: what is free on the file system of the checkout, e.g. "41G free" (for the log).
disk_free() { df -h --output=avail "$ROOT_DIR" 2>/dev/null | awk 'NR == 2 { print $1 " free" }'; }

# tail_log FILE [LINES]: show the end of a log file, indented.
tail_log() {
    local f=$1 n=${2:-40}
    [[ -s "$f" ]] || return 0
    printf -- '---- last %s lines of %s ----\n' "$n" "${f#"$ROOT_DIR"/}"
    tail -n "$n" "$f" | sed 's/^/    /'
    printf -- '---- end of %s ----\n' "${f#"$ROOT_DIR"/}"
}

# ---------------------------------------------------------------------------
# apt

APT_UPDATED=0
apt_update_once() {
    [[ $APT_UPDATED == 1 ]] && return 0
    info "apt-get update"
    if timeout --foreground 600 apt-get update -qq >/dev/null; then
        APT_UPDATED=1
        return 0
    fi
    err "apt-get update failed"
    return 1
}

# apt_install PKG...: install the Debian packages that are not installed yet.
apt_install() {
    local pkg need=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
    done
    [[ ${#need[@]} -eq 0 ]] && return 0
    if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) != 0 ]]; then
        err "need Debian packages ${need[*]} but cannot apt-get install (not root or no apt)"
        return 1
    fi
    apt_update_once || return 1
    info "apt-get install ${need[*]}"
    timeout --foreground 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# ---------------------------------------------------------------------------
# background processes

BG_PIDS=()

# bg_start LOGFILE SECONDS CMD...: start CMD in the background under
# timeout(1), stdout+stderr to LOGFILE ("-": inherit), stdin from
# /dev/null. Sets BG_PID. timeout(1) puts itself and CMD into a new
# process group whose id is BG_PID, so `bg_stop` can signal the group.
bg_start() {
    local log=$1 secs=$2 left
    shift 2
    left=$(($(time_left) - 30))
    if ((left < secs)); then
        ((left < 1)) && left=1
        warn "time limit cut from ${secs}s to ${left}s: the run's budget (TEST_BUDGET) is nearly spent"
        secs=$left
    fi
    if [[ "$log" == "-" ]]; then
        timeout --kill-after=10 "$secs" "$@" </dev/null &
    else
        timeout --kill-after=10 "$secs" "$@" </dev/null >"$log" 2>&1 &
    fi
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# bg_forget PID: drop PID from the cleanup list (after it was reaped).
bg_forget() {
    local p keep=()
    for p in "${BG_PIDS[@]}"; do
        [[ "$p" == "$1" ]] || keep+=("$p")
    done
    BG_PIDS=("${keep[@]}")
}

# run_limited LOGFILE SECONDS CMD...: like bg_start, then wait for it and
# return its exit status (124/137: timed out). Waiting with `wait` rather
# than running in the foreground keeps the script responsive to INT/TERM,
# whose traps then stop the command through the EXIT trap.
run_limited() {
    local pid rc=0
    bg_start "$@"
    pid=$BG_PID
    wait "$pid" || rc=$?
    bg_forget "$pid"
    return $rc
}

# bg_alive PID
bg_alive() { kill -0 "$1" 2>/dev/null; }

# bg_stop PID: TERM the process group, wait up to 10 s, then KILL it.
bg_stop() {
    local pid=$1 i
    [[ -n "$pid" ]] || return 0
    if bg_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            bg_alive "$pid" || break
            sleep 0.1
        done
        if bg_alive "$pid"; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    bg_forget "$pid"
}

cleanup_bg() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        bg_stop "$pid"
    done
    BG_PIDS=()
    return 0
}

install_cleanup_trap() {
    trap 'cleanup_bg' EXIT
    trap 'echo "interrupted" >&2; exit 130' INT
    trap 'echo "terminated" >&2; exit 143' TERM
}

# ---------------------------------------------------------------------------
# ports

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# wait_port PORT SECONDS [PID]: poll until something accepts TCP connections
# on 127.0.0.1:PORT. Fails early if PID (the process expected to listen)
# exits first, and after SECONDS.
wait_port() {
    local port=$1 secs=$2 pid=${3:-}
    python3 - "$port" "$secs" "$pid" <<'EOF'
import os, socket, sys, time
port, secs, pid = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + secs
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        pass
    if pid:
        try:
            os.kill(int(pid), 0)
        except OSError:
            print("process %s exited before listening on port %d" % (pid, port), file=sys.stderr)
            sys.exit(2)
    if time.monotonic() > deadline:
        print("nothing listening on 127.0.0.1:%d after %.0f s" % (port, secs), file=sys.stderr)
        sys.exit(1)
    time.sleep(0.05)
EOF
}

# autogroup_nice NICE: with autogroup scheduling (the default on most kernels) `nice` only ranks
# processes within one session; against other sessions' work (a build in another terminal) it
# is the session's autogroup nice that counts. Sets this shell's autogroup to NICE and prints
# the previous value (to restore with autogroup_restore), or prints nothing and returns 1 when
# autogroups are off or not writable.
autogroup_nice() {
    local nice=$1 previous
    [[ -w /proc/self/autogroup ]] || return 1
    [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]] || return 1
    previous=$(sed -n 's/.* nice //p' "/proc/$$/autogroup")
    echo "$nice" >"/proc/$$/autogroup" 2>/dev/null || return 1
    echo "$previous"
}

# autogroup_restore NICE: undo autogroup_nice (a no-op for an empty NICE).
autogroup_restore() {
    [[ -n "${1:-}" ]] && echo "$1" >"/proc/$$/autogroup" 2>/dev/null
    return 0
}

# venv_install VENV REQUIREMENTS IMPORTS LABEL VERSION_EXPR: a python3 venv at VENV with
# REQUIREMENTS installed, reinstalled when the file changed since the last install (a copy is
# kept in the venv). IMPORTS (e.g. "stomp, websocket") must import; LABEL and the python
# expression VERSION_EXPR make the info line. On failure sets VENV_MISSING and returns 1.
# shellcheck disable=SC2034 # VENV_MISSING is read by the callers
venv_install() {
    local venv=$1 req=$2 imports=$3 label=$4 version=$5
    local stamp="$venv/wsx-requirements.txt" log="$venv/install.log" py="$venv/bin/python"
    VENV_MISSING=""
    command -v python3 >/dev/null 2>&1 || { VENV_MISSING="python3 not found"; return 1; }
    if [[ -x "$py" ]] && cmp -s "$req" "$stamp" && "$py" -c "import $imports" >/dev/null 2>&1; then
        info "$label: $("$py" -c "import $imports; print($version)") (${venv#"$ROOT_DIR"/})"
        return 0
    fi
    if [[ ! -x "$py" ]]; then
        info "python3 -m venv ${venv#"$ROOT_DIR"/}"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            # Debian's own python3 keeps venv/ensurepip in a separate package.
            if [[ "$(command -v python3)" != /usr/bin/python3 ]] || ! apt_install python3-venv ||
                ! python3 -m venv --clear "$venv" >/dev/null 2>&1; then
                VENV_MISSING="python3 -m venv ${venv} failed"
                return 1
            fi
        fi
    fi
    info "pip install -r ${req#"$ROOT_DIR"/} (log: ${log#"$ROOT_DIR"/})"
    if ! "$py" -m pip install -r "$req" >"$log" 2>&1; then
        tail_log "$log" 20
        VENV_MISSING="pip install -r ${req#"$ROOT_DIR"/} failed"
        return 1
    fi
    cp "$req" "$stamp"
    info "$label: $("$py" -c "import $imports; print($version)")"
}

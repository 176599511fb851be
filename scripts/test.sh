#!/usr/bin/env bash
# The one test command for wsx.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh autobahn        # only steps whose name contains "autobahn"
#   bash scripts/test.sh "cargo test"    # only cargo test
#   bash scripts/test.sh interop         # only the interop tests (scripts/interop/interop.sh)
#   bash scripts/test.sh fuzz            # only the fuzz smoke run (scripts/fuzz.sh)
#   bash scripts/test.sh browser         # only the headless Chromium tests (scripts/browser/browser.sh)
#   bash scripts/test.sh stomp           # only the stompjs client vs /stomp (scripts/interop/stomp/stomp.sh)
#
# Installs what it needs if missing (Debian packages, Autobahn|Testsuite),
# then runs the steps in STEPS below and ends with one line
# "test.sh: N passed, N failed[, N skipped]". Exits non-zero if any step failed.
# Under CI=true a missing tool is a failure, never a skip.
#
# Environment (all optional):
#   AUTOBAHN_CASES      case patterns, comma-separated (default "*")
#   AUTOBAHN_EXCLUDE    excluded patterns (default none: all 517 cases; see scripts/lib/autobahn.sh)
#   AUTOBAHN_TIMEOUT    seconds per wstest / testee process (default 1800)
#   CARGO_TEST_TIMEOUT  seconds for cargo test (default 1800)
#   BUILD_TIMEOUT       seconds for the release build of the examples (default 1200)
#   TEST_BUDGET         seconds for the whole run (default 5100 = 85 min, under
#                       CI's 90): every time limit above is cut to what is left
#   WSX_ECHO_SERVER, WSX_AUTOBAHN_CLIENT  stand-in testee commands (see scripts/lib/autobahn.sh)
#   REPORTS_DIR         where reports go (default ./reports)
#   INTEROP_TIMEOUT, INTEROP_PEERS, INTEROP_VENV  see scripts/interop/interop.sh
#   FUZZ_SECONDS        seconds per fuzz target in the fuzz step (default 20; see scripts/fuzz.sh)
#   FUZZ_STEP_TIMEOUT   seconds for the whole fuzz step, build included (default 1800)
#   BROWSER_TIMEOUT, BROWSER_CHROMIUM, BROWSER_SCREENSHOT, BROWSER_STOMP_SCREENSHOT,
#   BROWSER_QUOTES_SCREENSHOT  see scripts/browser/browser.sh
#   WSX_TEST_REDIS_URL  a Redis for the wsx-stomp-redis tests; unset, the cargo test step
#                       starts redis-server (Debian package) on a free port itself
#   STOMP_INTEROP_TIMEOUT  see scripts/interop/stomp/stomp.sh
set -uo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR" || exit 1

# Debug builds without incremental caches and with line tables only (backtraces keep file and
# line): the test build takes ~2.6 GB of target/ instead of ~11 GB, which a CI machine with
# little disk needs (a run once failed with "No space left on device"). A caller's own
# settings win.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
# shellcheck source=lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=lib/autobahn.sh
source "$ROOT_DIR/scripts/lib/autobahn.sh"
# shellcheck source=interop/interop.sh
source "$ROOT_DIR/scripts/interop/interop.sh"
# shellcheck source=browser/browser.sh
source "$ROOT_DIR/scripts/browser/browser.sh"
# shellcheck source=interop/stomp/stomp.sh
source "$ROOT_DIR/scripts/interop/stomp/stomp.sh"

# ---------------------------------------------------------------------------
# Installers: run once, before the steps, in this order. Each is idempotent.
# A failing installer is reported here; the steps that need the tool then
# fail (CI) or skip (local) on their own.
INSTALLERS=(
    install_build_deps
    install_redis
    install_autobahn
    install_interop_peers
    install_cargo_fuzz
    install_browser
    install_stomp_interop
)

# Steps: "name|function". Each function returns 0 (pass), 1 (fail) or
# $SKIP_RC (skip; only outside CI). Add new suites (npm/pip peers, ...) here.
STEPS=(
    "cargo test|step_cargo_test"
    "autobahn|step_autobahn"
    "interop|step_interop"
    "stomp|step_stomp_interop"
    "fuzz|step_fuzz"
    "browser|step_browser"
)

# ---------------------------------------------------------------------------
# installers

install_build_deps() {
    # Debian packages the Rust build needs (none beyond the toolchain's
    # gcc for now); add -dev packages here when a -sys crate arrives.
    local pkgs=()
    command -v cc >/dev/null 2>&1 || pkgs+=(gcc libc6-dev)
    [[ ${#pkgs[@]} -eq 0 ]] && { info "build deps: present"; return 0; }
    apt_install "${pkgs[@]}"
}

install_redis() {
    # redis-server (Debian package) for the Redis tests, when cargo test is selected. Needed
    # even with WSX_TEST_REDIS_URL: the Sentinel and Cluster tests start processes of their own,
    # and redis-cli (Debian redis-tools) joins the Cluster tests' nodes (--cluster create).
    selected "cargo test" || return 0
    [[ -n "${WSX_TEST_REDIS_URL:-}" ]] && info "redis: the engine tests use WSX_TEST_REDIS_URL"
    if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        info "redis: $(redis-server --version 2>/dev/null)"
        return 0
    fi
    apt_install redis-server redis-tools
}

install_autobahn() {
    # Only needed when an autobahn step is selected.
    selected "autobahn" || return 0
    autobahn_install
}

install_interop_peers() {
    # Python websockets (venv under .tools/) and Node ws (npm ci in scripts/interop),
    # only when the interop step is selected.
    selected "interop" || return 0
    interop_install
}

install_cargo_fuzz() {
    # cargo-fuzz (from crates.io) for the fuzz step, only when it is selected. It runs on the
    # stable toolchain with RUSTC_BOOTSTRAP=1 (scripts/fuzz.sh sets it).
    selected "fuzz" || return 0
    command -v cargo >/dev/null 2>&1 || { err "cargo not found: cannot install cargo-fuzz"; return 1; }
    if cargo fuzz --version >/dev/null 2>&1; then
        info "cargo-fuzz: $(cargo fuzz --version 2>/dev/null)"
        return 0
    fi
    info "cargo install cargo-fuzz --locked"
    if ! run_limited - "${BUILD_TIMEOUT:-1200}" cargo install cargo-fuzz --locked; then
        err "cargo install cargo-fuzz failed"
        return 1
    fi
}

install_browser() {
    # Chromium (Debian package `chromium`), redis-server (Debian package, for the two-node
    # STOMP case) and playwright-core (npm ci in scripts/browser), only when the browser step
    # is selected.
    selected "browser" || return 0
    browser_install
}

# ---------------------------------------------------------------------------
# steps

# redis_start: start redis-server on a free port for the Redis engine tests and export
# WSX_TEST_REDIS_URL (stopped by redis_stop, or by the EXIT trap). Without redis-server the
# Redis tests skip, except under CI where that is a failure.
REDIS_PID=""
redis_start() {
    [[ -n "${WSX_TEST_REDIS_URL:-}" ]] && return 0
    command -v redis-server >/dev/null 2>&1 || { missing "redis-server not found"; return; }
    local port
    port="$(free_port)" || return 1
    mkdir -p "$REPORTS_DIR"
    bg_start "$REPORTS_DIR/redis.log" "$((${CARGO_TEST_TIMEOUT:-1800} + 120))" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
    REDIS_PID=$BG_PID
    if ! wait_port "$port" 30 "$REDIS_PID"; then
        err "redis-server did not start (see $REPORTS_DIR/redis.log)"
        tail_log "$REPORTS_DIR/redis.log"
        return 1
    fi
    export WSX_TEST_REDIS_URL="redis://127.0.0.1:$port"
    info "redis-server on $WSX_TEST_REDIS_URL"
}

redis_stop() {
    [[ -n "$REDIS_PID" ]] || return 0
    bg_stop "$REDIS_PID"
    REDIS_PID=""
    unset WSX_TEST_REDIS_URL
}

step_cargo_test() {
    command -v cargo >/dev/null 2>&1 || { missing "cargo not found"; return; }
    local rc=0
    redis_start || rc=$?
    # No Redis under CI: the step fails (the Redis tests would fail too); outside CI they skip.
    [[ $rc == "$SKIP_RC" ]] && rc=0
    # --no-fail-fast: report every failing test binary, not only the first.
    info "cargo test --workspace --all-features --no-fail-fast ${CARGO_TEST_ARGS:-}"
    # shellcheck disable=SC2086
    run_limited - "${CARGO_TEST_TIMEOUT:-1800}" cargo test --workspace --all-features --no-fail-fast ${CARGO_TEST_ARGS:-} || rc=$?
    [[ $rc == 124 || $rc == 137 ]] && err "cargo test timed out after ${CARGO_TEST_TIMEOUT:-1800}s"
    redis_stop
    return $((rc != 0))
}

# Both Autobahn roles at once: wstest is single-threaded Python and the wsx testees are light, so
# on two cores the pair takes about as long as the slower role alone. The server role's output
# is collected in a file and printed after the client role's.
step_autobahn() {
    autobahn_install || return
    autobahn_testees || return
    mkdir -p "$REPORTS_DIR"
    local slog="$REPORTS_DIR/autobahn-server-role.log" spid rc_server=0 rc_client=0
    (autobahn_server_role) >"$slog" 2>&1 &
    spid=$!
    autobahn_client_role || rc_client=$?
    wait "$spid" || rc_server=$?
    cat "$slog"
    return $((rc_server != 0 || rc_client != 0))
}
step_interop() { interop_run; }
step_browser() { browser_run; }

step_fuzz() {
    # Every fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS each: a smoke run that replays
    # the corpus kept in fuzz/corpus and explores a little; scripts/fuzz.sh 600 for real runs.
    cargo fuzz --version >/dev/null 2>&1 || { missing "cargo-fuzz not found"; return; }
    local rc=0
    run_limited - "${FUZZ_STEP_TIMEOUT:-1800}" bash "$ROOT_DIR/scripts/fuzz.sh" "${FUZZ_SECONDS:-20}" || rc=$?
    [[ $rc == 124 || $rc == 137 ]] && err "the fuzz step timed out after ${FUZZ_STEP_TIMEOUT:-1800}s"
    return $((rc != 0))
}

# ---------------------------------------------------------------------------
# driver

FILTERS=("$@")

# selected WORD: is any selected step's name containing WORD?
selected() {
    local entry name
    for entry in "${STEPS[@]}"; do
        name=${entry%%|*}
        step_selected "$name" && [[ "$name" == *"$1"* ]] && return 0
    done
    return 1
}

step_selected() {
    local f
    [[ ${#FILTERS[@]} -eq 0 ]] && return 0
    for f in "${FILTERS[@]}"; do
        [[ "$1" == *"$f"* ]] && return 0
    done
    return 1
}

main() {
    install_cleanup_trap
    local t_start entry name fn rc t0 inst
    local passed=0 failed=0 skipped=0 results=()
    t_start=$(now_s)

    section "environment"
    info "repo: $ROOT_DIR   CI=${CI:-}   disk: $(disk_free)"
    info "$(cargo --version 2>/dev/null || echo 'cargo: not found')"
    info "$(rustc --version 2>/dev/null || echo 'rustc: not found')"
    info "$(python3 --version 2>&1 || echo 'python3: not found')"
    info "$(nproc 2>/dev/null || echo '?') cores"

    section "install"
    for inst in "${INSTALLERS[@]}"; do
        "$inst"
        rc=$?
        case $rc in
            0) ;;
            "$SKIP_RC") warn "$inst: not available" ;;
            *) err "$inst failed" ;;
        esac
    done

    for entry in "${STEPS[@]}"; do
        name=${entry%%|*}
        fn=${entry#*|}
        step_selected "$name" || continue
        section "$name"
        t0=$(now_s)
        "$fn"
        rc=$?
        if [[ $rc == "$SKIP_RC" ]] && is_ci; then
            rc=1
        fi
        case $rc in
            0) passed=$((passed + 1)); results+=("PASS  $name ($(fmt_duration $(($(now_s) - t0))))") ;;
            "$SKIP_RC") skipped=$((skipped + 1)); results+=("SKIP  $name") ;;
            *) failed=$((failed + 1)); results+=("FAIL  $name ($(fmt_duration $(($(now_s) - t0))))") ;;
        esac
        info "$name: ${results[-1]%% *} in $(fmt_duration $(($(now_s) - t0))); disk: $(disk_free)"
    done
    cleanup_bg

    section "summary"
    if [[ ${#results[@]} -eq 0 ]]; then
        err "no step matched: ${FILTERS[*]}"
        failed=1
    fi
    printf '  %s\n' "${results[@]}"
    info "total time $(fmt_duration $(($(now_s) - t_start)))"
    if [[ $skipped -gt 0 ]]; then
        echo "test.sh: $passed passed, $failed failed, $skipped skipped"
    else
        echo "test.sh: $passed passed, $failed failed"
    fi
    [[ $failed -eq 0 ]]
}

main

# shellcheck shell=bash
# Browser interop tests of `wsx serve`: headless Chromium (Debian's `chromium` package) driven by
# playwright-core (pinned in scripts/browser/package.json + package-lock.json, npm ci) runs
# scripts/browser/browser_test.mjs against the release `wsx` binary. What is tested is listed at
# the top of that file; each case prints one line
#   browser: <case>: ok (...) | FAIL (why) | skip (why)
# and the servers' logs and screenshots of the chat page (chat.png, and chat-stomp.png: the
# STOMP mode on two nodes) and of the quote page of --demo-quotes (quotes.png, quotes-mobile.png)
# go to $REPORTS_DIR/browser/.
#
# The two-node case needs Redis: this step starts redis-server (Debian package `redis-server`,
# installed by browser_install) on a free port with --save '' --appendonly no, passes its URL
# to the test (which starts two `wsx serve --broker redis://...`) and stops it afterwards (the
# EXIT trap's cleanup too). Without redis-server that case is a skip, or a failure under CI=true.
#
# Source after scripts/lib/common.sh; scripts/test.sh calls browser_install (installer) and
# browser_run (step "browser").
#
# Environment (optional): BROWSER_CHROMIUM (default /usr/bin/chromium; apt-get install chromium
# when that default is missing), BROWSER_TIMEOUT (seconds for the test run, default 120),
# BROWSER_SCREENSHOT (also copy the chat page's screenshot there, e.g. docs/chat.png),
# BROWSER_STOMP_SCREENSHOT (the same for the two-node STOMP screenshot, e.g. docs/chat-stomp.png),
# BROWSER_QUOTES_SCREENSHOT (the same for the quote page's, e.g. docs/quotes.png).

BROWSER_DIR="$ROOT_DIR/scripts/browser"
BROWSER_CHROMIUM="${BROWSER_CHROMIUM:-/usr/bin/chromium}"
BROWSER_TIMEOUT="${BROWSER_TIMEOUT:-180}"
BROWSER_SCREENSHOT="${BROWSER_SCREENSHOT:-}"
BROWSER_STOMP_SCREENSHOT="${BROWSER_STOMP_SCREENSHOT:-}"
BROWSER_QUOTES_SCREENSHOT="${BROWSER_QUOTES_SCREENSHOT:-}"

BROWSER_READY=0    # 1 once Chromium and the locked playwright-core are there
BROWSER_MISSING="" # why not, otherwise

# browser_install: Chromium (Debian package), redis-server (Debian package; for the two-node
# case only, so its absence does not stop the other cases) and node_modules from
# package-lock.json (npm ci, unless the locked playwright-core version is already installed).
# Idempotent.
browser_install() {
    local want have log="$TOOLS_DIR/browser-npm-ci.log"
    BROWSER_READY=0
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server || warn "apt-get install redis-server failed: no two-node browser case"
    fi
    if [[ ! -x "$BROWSER_CHROMIUM" && "$BROWSER_CHROMIUM" == /usr/bin/chromium ]]; then
        apt_install chromium || { BROWSER_MISSING="apt-get install chromium failed"; return 1; }
    fi
    [[ -x "$BROWSER_CHROMIUM" ]] || { BROWSER_MISSING="no Chromium at $BROWSER_CHROMIUM"; return 1; }
    command -v node >/dev/null 2>&1 || { BROWSER_MISSING="node not found"; return 1; }
    command -v npm >/dev/null 2>&1 || { BROWSER_MISSING="npm not found"; return 1; }
    want="$(cd "$BROWSER_DIR" && node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version" 2>/dev/null)"
    have="$(cd "$BROWSER_DIR" && node -p "require('playwright-core/package.json').version" 2>/dev/null)"
    if [[ -z "$want" || "$want" != "$have" ]]; then
        info "npm ci in ${BROWSER_DIR#"$ROOT_DIR"/} (node $(node --version); log: ${log#"$ROOT_DIR"/})"
        mkdir -p "$TOOLS_DIR"
        # playwright-core downloads no browser on install; ours is Debian's.
        if ! (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
            tail_log "$log" 20
            BROWSER_MISSING="npm ci in ${BROWSER_DIR#"$ROOT_DIR"/} failed"
            return 1
        fi
        have="$(cd "$BROWSER_DIR" && node -p "require('playwright-core/package.json').version" 2>/dev/null)"
    fi
    BROWSER_READY=1
    info "browser: $("$BROWSER_CHROMIUM" --version 2>/dev/null | head -n 1), playwright-core $have (node $(node --version))"
}

# browser_build: cargo build --release -p wsx-cli; sets BROWSER_WSX_BIN.
BROWSER_WSX_BIN=""
browser_build() {
    local log="$REPORTS_DIR/browser/build.log" json="$REPORTS_DIR/browser/build.json"
    command -v cargo >/dev/null 2>&1 || { missing "cargo not found"; return; }
    info "cargo build --release -p wsx-cli"
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
    if ! run_limited - "${BUILD_TIMEOUT:-1200}" bash -c 'exec cargo build --release -p wsx-cli \
        --message-format=json-render-diagnostics >"$1" 2>"$2"' _ "$json" "$log"; then
        tail_log "$log" 60
        err "building wsx-cli failed"
        return 1
    fi
    BROWSER_WSX_BIN="$(python3 - "$json" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and t.get("name") == "wsx" and "bin" in t.get("kind", []):
        print(m["executable"])
EOF
)"
    if [[ ! -x "$BROWSER_WSX_BIN" ]]; then
        err "could not find the built wsx binary ('$BROWSER_WSX_BIN')"
        return 1
    fi
}

# browser_redis_start DIR: start redis-server on a free port (log DIR/redis.log); sets
# BROWSER_REDIS_PID and BROWSER_REDIS_URL. Registered with bg_start, so the EXIT trap stops it.
BROWSER_REDIS_PID=""
BROWSER_REDIS_URL=""
browser_redis_start() {
    local dir=$1 port
    port="$(free_port)" || return 1
    bg_start "$dir/redis.log" "$((BROWSER_TIMEOUT + 60))" \
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no
    BROWSER_REDIS_PID=$BG_PID
    if ! wait_port "$port" 30 "$BROWSER_REDIS_PID"; then
        err "redis-server did not start (see ${dir#"$ROOT_DIR"/}/redis.log)"
        tail_log "$dir/redis.log"
        bg_stop "$BROWSER_REDIS_PID"
        BROWSER_REDIS_PID=""
        return 1
    fi
    BROWSER_REDIS_URL="redis://127.0.0.1:$port"
    info "redis-server on $BROWSER_REDIS_URL for the two-node case"
}

# browser_run: the step. Fails when any case fails; missing Chromium/node/playwright-core is
# `missing` (a failure under CI, a skip otherwise); so is a missing redis-server, but that only
# leaves out the two-node case: the others run.
browser_run() {
    local dir="$REPORTS_DIR/browser" rc=0 redis_rc=0 t0 args=()
    if [[ $BROWSER_READY != 1 ]]; then
        missing "browser tests: ${BROWSER_MISSING:-not installed}"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    browser_build || return
    args=(--wsx "$BROWSER_WSX_BIN" --out "$dir" --chromium "$BROWSER_CHROMIUM")
    [[ -n "$BROWSER_SCREENSHOT" ]] && args+=(--screenshot "$BROWSER_SCREENSHOT")
    [[ -n "$BROWSER_STOMP_SCREENSHOT" ]] && args+=(--stomp-screenshot "$BROWSER_STOMP_SCREENSHOT")
    [[ -n "$BROWSER_QUOTES_SCREENSHOT" ]] && args+=(--quotes-screenshot "$BROWSER_QUOTES_SCREENSHOT")
    BROWSER_REDIS_URL=""
    if command -v redis-server >/dev/null 2>&1; then
        browser_redis_start "$dir" || redis_rc=1
    else
        # CI: 1 (the step fails; the test reports the case as FAIL too); otherwise a skip.
        missing "redis-server not found: the two-node STOMP case cannot run" || redis_rc=$?
        [[ $redis_rc == "$SKIP_RC" ]] && redis_rc=0
    fi
    [[ -n "$BROWSER_REDIS_URL" ]] && args+=(--redis "$BROWSER_REDIS_URL")
    t0=$(now_s)
    info "node scripts/browser/browser_test.mjs (log: ${dir#"$ROOT_DIR"/}/browser.log)"
    run_limited "$dir/browser.log" "$BROWSER_TIMEOUT" node "$BROWSER_DIR/browser_test.mjs" "${args[@]}" || rc=$?
    if [[ -n "$BROWSER_REDIS_PID" ]]; then
        bg_stop "$BROWSER_REDIS_PID"
        BROWSER_REDIS_PID=""
    fi
    grep -E '^browser: ' "$dir/browser.log"
    if [[ $rc != 0 ]]; then
        [[ $rc == 124 || $rc == 137 ]] && err "the browser tests timed out after ${BROWSER_TIMEOUT}s"
        tail_log "$dir/browser.log" 40
        tail_log "$dir/wsx-serve.log" 20
        local f
        for f in "$dir"/wsx-serve-node-*.log; do
            [[ -e "$f" ]] && tail_log "$f" 20
        done
    fi
    info "browser: done in $(fmt_duration $(($(now_s) - t0))) (logs, chat.png, chat-stomp.png, quotes.png: ${dir#"$ROOT_DIR"/}/)"
    return $((rc != 0 || redis_rc != 0))
}

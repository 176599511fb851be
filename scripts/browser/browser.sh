# shellcheck shell=bash
# Browser interop tests of `wsx serve`: headless Chromium (Debian's `chromium` package) driven by
# playwright-core (pinned in scripts/browser/package.json + package-lock.json, npm ci) runs
# scripts/browser/browser_test.mjs against the release `wsx` binary. What is tested is listed at
# the top of that file; each case prints one line
#   browser: <case>: ok (...) | FAIL (why)
# and the server's log and a screenshot of the chat page go to $REPORTS_DIR/browser/.
#
# Source after scripts/lib/common.sh; scripts/test.sh calls browser_install (installer) and
# browser_run (step "browser").
#
# Environment (optional): BROWSER_CHROMIUM (default /usr/bin/chromium; apt-get install chromium
# when that default is missing), BROWSER_TIMEOUT (seconds for the test run, default 120),
# BROWSER_SCREENSHOT (also copy the chat page's screenshot there, e.g. docs/chat.png).

BROWSER_DIR="$ROOT_DIR/scripts/browser"
BROWSER_CHROMIUM="${BROWSER_CHROMIUM:-/usr/bin/chromium}"
BROWSER_TIMEOUT="${BROWSER_TIMEOUT:-120}"
BROWSER_SCREENSHOT="${BROWSER_SCREENSHOT:-}"

BROWSER_READY=0    # 1 once Chromium and the locked playwright-core are there
BROWSER_MISSING="" # why not, otherwise

# browser_install: Chromium (Debian package) and node_modules from package-lock.json (npm ci,
# unless the locked playwright-core version is already installed). Idempotent.
browser_install() {
    local want have log="$TOOLS_DIR/browser-npm-ci.log"
    BROWSER_READY=0
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

# browser_run: the step. Fails when any case fails; missing Chromium/node/playwright-core is
# `missing` (a failure under CI, a skip otherwise).
browser_run() {
    local dir="$REPORTS_DIR/browser" rc=0 t0 args=()
    if [[ $BROWSER_READY != 1 ]]; then
        missing "browser tests: ${BROWSER_MISSING:-not installed}"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    browser_build || return
    args=(--wsx "$BROWSER_WSX_BIN" --out "$dir" --chromium "$BROWSER_CHROMIUM")
    [[ -n "$BROWSER_SCREENSHOT" ]] && args+=(--screenshot "$BROWSER_SCREENSHOT")
    t0=$(now_s)
    info "node scripts/browser/browser_test.mjs (log: ${dir#"$ROOT_DIR"/}/browser.log)"
    run_limited "$dir/browser.log" "$BROWSER_TIMEOUT" node "$BROWSER_DIR/browser_test.mjs" "${args[@]}" || rc=$?
    grep -E '^browser: ' "$dir/browser.log"
    if [[ $rc != 0 ]]; then
        [[ $rc == 124 || $rc == 137 ]] && err "the browser tests timed out after ${BROWSER_TIMEOUT}s"
        tail_log "$dir/browser.log" 40
        tail_log "$dir/wsx-serve.log" 20
    fi
    info "browser: done in $(fmt_duration $(($(now_s) - t0))) (logs and chat.png: ${dir#"$ROOT_DIR"/}/)"
    return $((rc != 0))
}

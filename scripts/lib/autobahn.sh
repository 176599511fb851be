# shellcheck shell=bash
# Autobahn|Testsuite: install (Python 2.7 + wstest) and run both roles.
# Source after scripts/lib/common.sh.

# ---------------------------------------------------------------------------
# Case selection. Comma-separated case patterns as wstest understands them.
#
# AUTOBAHN_EXCLUDE is THE exclusion list; by default nothing is excluded: all
# 517 cases, 12.* and 13.* (permessage-deflate, 216 cases) included. For a
# quick run without compression: AUTOBAHN_EXCLUDE="12.*,13.*" (301 cases).
AUTOBAHN_CASES="${AUTOBAHN_CASES-*}"
AUTOBAHN_EXCLUDE="${AUTOBAHN_EXCLUDE-}"

AUTOBAHN_AGENT="${AUTOBAHN_AGENT:-wsx}"
AUTOBAHN_VERSION="${AUTOBAHN_VERSION:-25.10.1}"
AUTOBAHN_HOME="${AUTOBAHN_HOME:-$TOOLS_DIR/autobahn}"   # wstest's --prefix
AUTOBAHN_WHEELS="${AUTOBAHN_WHEELS:-$TOOLS_DIR/py27-wheels}"
# Per-process time limits (seconds): each wstest run and each testee.
# The full suite (with 12.*/13.*) takes ~14 min (server) and ~18 min (client)
# on a 2-core machine; without them ~15 s each.
AUTOBAHN_TIMEOUT="${AUTOBAHN_TIMEOUT:-1800}"
# How long a server (echo_server or wstest fuzzingserver) may take to listen.
AUTOBAHN_LISTEN_TIMEOUT="${AUTOBAHN_LISTEN_TIMEOUT:-60}"

# Testee overrides, for stand-ins: a command line, word-split; the
# address/URL is appended as the last argument. When unset the wsx examples
# are built in release mode and used.
#   WSX_ECHO_SERVER="python3 /tmp/echo.py"   -> ... 127.0.0.1:PORT
#   WSX_AUTOBAHN_CLIENT="python3 /tmp/tc.py" -> ... ws://127.0.0.1:PORT
WSX_ECHO_SERVER="${WSX_ECHO_SERVER:-}"
WSX_AUTOBAHN_CLIENT="${WSX_AUTOBAHN_CLIENT:-}"

PY27=""          # python2.7 interpreter that has autobahntestsuite
WSTEST=()        # command prefix that runs wstest
AUTOBAHN_READY=0 # 1 once autobahn_install succeeded


# ---------------------------------------------------------------------------
# Python 2.7

py27_ok() { [[ -n "$1" && -x "$1" ]] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1; }

# py27_find: print a working python2.7, preferring pyenv's.
py27_find() {
    local cand root
    if [[ -n "${AUTOBAHN_PYTHON:-}" ]]; then
        py27_ok "$AUTOBAHN_PYTHON" && { echo "$AUTOBAHN_PYTHON"; return 0; }
        err "AUTOBAHN_PYTHON=$AUTOBAHN_PYTHON is not a working Python 2.7"
        return 1
    fi
    root="${PYENV_ROOT:-}"
    [[ -z "$root" ]] && command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"
    [[ -z "$root" ]] && root="$HOME/.pyenv"
    # highest 2.7.x first
    while IFS= read -r cand; do
        py27_ok "$cand" && { echo "$cand"; return 0; }
    done < <(ls -d "$root"/versions/2.7.*/bin/python2.7 2>/dev/null | sort -rV)
    for cand in /usr/bin/python2.7 /usr/local/bin/python2.7; do
        py27_ok "$cand" && { echo "$cand"; return 0; }
    done
    return 1
}

# debian_archive_uri: print the URI of the machine's main Debian archive,
# read from its own apt sources (deb822 debian.sources or sources.list).
debian_archive_uri() {
    python3 - "${APT_ETC:-/etc/apt}" <<'EOF'
import glob, re, sys
etc = sys.argv[1]

def suite_ok(s):
    # the main archive: "bookworm", "bookworm-updates"; not "-security"
    return "security" not in s and "backports" not in s

cands = []
for path in sorted(glob.glob(etc + "/sources.list.d/*.sources")):
    try:
        text = open(path).read()
    except OSError:
        continue
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.split()
        if "deb" not in fields.get("types", []):
            continue
        if fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        suites = fields.get("suites", [])
        for uri in fields.get("uris", []):
            if any(suite_ok(s) for s in suites):
                cands.append((0 if path.endswith("/debian.sources") else 1, uri))
for path in [etc + "/sources.list"] + sorted(glob.glob(etc + "/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb" and suite_ok(line[2]):
            cands.append((2, line[1]))
# prefer a URI whose path looks like a Debian archive
cands.sort(key=lambda c: (c[0], 0 if re.search(r"/debian/?($|[0-9TZ/]*$)", c[1]) else 1))
for _, uri in cands:
    if "debian" in uri:
        print(uri.rstrip("/"))
        sys.exit(0)
sys.exit(1)
EOF
}

# py27_install_from_bullseye: Debian 12 has no python2.7; take it from
# bullseye through a temporary apt source whose URI is the machine's own
# Debian archive, pinned so nothing else is upgraded from bullseye.
py27_install_from_bullseye() {
    local uri list=/etc/apt/sources.list.d/wsx-bullseye-python27.list
    local pref=/etc/apt/preferences.d/wsx-bullseye-python27 keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local opts="" rc=0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        err "no python2.7 and cannot apt-get install it (not root or no apt)"
        return 1
    fi
    if ! uri="$(debian_archive_uri)"; then
        err "cannot find the Debian archive URI in /etc/apt/sources.list{,.d/}"
        return 1
    fi
    [[ -r "$keyring" ]] && opts="signed-by=$keyring"
    # snapshot archives serve Release files whose Valid-Until has passed
    [[ "$uri" == *snapshot* ]] && opts="${opts:+$opts }check-valid-until=no"
    [[ -n "$opts" ]] && opts="[$opts] "
    info "installing python2.7 from Debian bullseye ($uri, temporary source $list)"
    printf 'deb %s%s bullseye main\n' "$opts" "$uri" >"$list"
    printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' >"$pref"
    APT_UPDATED=0
    if apt_update_once; then
        # priority 100: used only for what exists nowhere else (python2.7
        # and its own libraries); never upgrades an installed package.
        timeout --foreground 900 apt-get install -y -qq --no-install-recommends python2.7 libpython2.7-dev >/dev/null || rc=1
    else
        rc=1
    fi
    rm -f "$list" "$pref"
    APT_UPDATED=0
    apt_update_once || true # drop the bullseye lists again
    [[ $rc == 0 ]] || err "apt-get install python2.7 from bullseye failed"
    return $rc
}

# Autobahn is installed with --prefix into AUTOBAHN_HOME (git-ignored
# .tools/ by default), never into the Python 2.7 itself, so nothing on the
# machine changes but (when there was none) Debian's python2.7 package.
# A fresh clone installs it anew (about 40 s), which keeps the recipe tested.
#
# autobahn_site: print the prefix's site-packages directory.
autobahn_site() {
    local d
    for d in "$AUTOBAHN_HOME"/lib/python2.7/site-packages "$AUTOBAHN_HOME"/lib/python2.7/dist-packages; do
        [[ -d "$d" ]] && { echo "$d"; return 0; }
    done
    return 1
}

# py27_prefix PY CMD...: run PY with the prefix first on sys.path.
py27_prefix() {
    local py=$1 site
    shift
    site="$(autobahn_site)" || return 1
    PYTHONPATH="$site" "$py" -s "$@"
}

# py27_bootstrap_pip PY: put pip 20.3.4 (the last with Python 2 support and
# manylinux2010 wheels), setuptools 44.1.1 and wheel 0.37.1 into the
# prefix, from their py2 wheels fetched with the machine's python3 pip.
py27_bootstrap_pip() {
    local py=$1 wheels="$AUTOBAHN_WHEELS" ver
    ver="$(py27_prefix "$py" -c 'import pip; print(pip.__version__)' 2>/dev/null)"
    [[ "$ver" == "20.3.4" ]] && return 0
    info "bootstrapping pip 20.3.4 into ${AUTOBAHN_HOME#"$ROOT_DIR"/}"
    rm -rf "${AUTOBAHN_HOME:?}"/lib "${AUTOBAHN_HOME:?}"/bin "${AUTOBAHN_HOME:?}"/include "${AUTOBAHN_HOME:?}"/share
    mkdir -p "$wheels"
    if [[ ! -f "$wheels/pip-20.3.4-py2.py3-none-any.whl" ]]; then
        timeout --foreground 600 python3 -m pip download -q --python-version 2.7 --only-binary=:all: \
            pip==20.3.4 setuptools==44.1.1 wheel==0.37.1 -d "$wheels" || {
            err "downloading the Python 2 pip/setuptools/wheel wheels failed"
            return 1
        }
    fi
    # pip runs straight from its wheel; -I: leave the interpreter's own pip alone.
    timeout --foreground 600 "$py" -s "$wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install -q -I --no-index \
        --find-links "$wheels" --prefix "$AUTOBAHN_HOME" --no-warn-script-location \
        pip==20.3.4 setuptools==44.1.1 wheel==0.37.1 >"$AUTOBAHN_HOME/bootstrap.log" 2>&1 || {
        tail_log "$AUTOBAHN_HOME/bootstrap.log" 30
        err "installing pip 20.3.4 into ${AUTOBAHN_HOME} failed"
        return 1
    }
    autobahn_site >/dev/null || { err "no site-packages under $AUTOBAHN_HOME after bootstrapping pip"; return 1; }
}

# wstest runs through its entry point with the prefix's site-packages added
# as a site dir (so .pth files, e.g. zope's namespace, are honoured) and put
# first on sys.path. argv: -c SHIM SITE wstest-args...
WSTEST_SHIM='import site, sys
n = len(sys.path); site.addsitedir(sys.argv[1]); sys.path[:] = sys.path[n:] + sys.path[:n]
del sys.argv[1]; sys.argv[0] = "wstest"
from autobahntestsuite.wstest import run
sys.exit(run())'

wstest_works() {
    local py=$1 site out
    site="$(autobahn_site)" || return 1
    out="$("$py" -s -c "$WSTEST_SHIM" "$site" --autobahnversion 2>/dev/null)" || return 1
    grep -q "AutobahnTestSuite $AUTOBAHN_VERSION" <<<"$out"
}

# autobahn_install: idempotent (and tried once per run). Sets PY27, WSTEST,
# AUTOBAHN_READY.
AUTOBAHN_INSTALL_RC=""
autobahn_install() {
    [[ -n "$AUTOBAHN_INSTALL_RC" ]] && return "$AUTOBAHN_INSTALL_RC" # tried already
    autobahn_install_once
    AUTOBAHN_INSTALL_RC=$?
    return "$AUTOBAHN_INSTALL_RC"
}

autobahn_install_once() {
    local log="$AUTOBAHN_HOME/install.log" site
    command -v python3 >/dev/null 2>&1 || { missing "python3 not found"; return; }
    if ! PY27="$(py27_find)"; then
        [[ -n "${AUTOBAHN_PYTHON:-}" ]] && { missing "AUTOBAHN_PYTHON is not usable"; return; }
        if [[ "${AUTOBAHN_NO_APT:-0}" == 1 ]]; then
            missing "no Python 2.7 found (and AUTOBAHN_NO_APT=1)"
            return
        fi
        py27_install_from_bullseye || { missing "could not install Python 2.7"; return; }
        PY27="$(py27_find)" || { missing "python2.7 still not found after installing it"; return; }
    fi
    info "Python 2.7: $PY27"
    if ! wstest_works "$PY27"; then
        mkdir -p "$AUTOBAHN_HOME"
        py27_bootstrap_pip "$PY27" || { missing "could not bootstrap pip for $PY27"; return; }
        info "pip install autobahntestsuite==$AUTOBAHN_VERSION into ${AUTOBAHN_HOME#"$ROOT_DIR"/} (log: ${log#"$ROOT_DIR"/})"
        if ! PYTHONPATH="$(autobahn_site)" timeout --foreground 900 "$PY27" -s -m pip install \
            --prefix "$AUTOBAHN_HOME" --no-warn-script-location \
            "autobahntestsuite==$AUTOBAHN_VERSION" >"$log" 2>&1; then
            tail_log "$log" 30
            missing "pip install autobahntestsuite==$AUTOBAHN_VERSION failed"
            return
        fi
        wstest_works "$PY27" || { missing "wstest installed but does not run"; return; }
    fi
    site="$(autobahn_site)"
    WSTEST=("$PY27" -s -c "$WSTEST_SHIM" "$site")
    # a wrapper for running wstest by hand
    printf '#!/usr/bin/env bash\n# generated by scripts/lib/autobahn.sh\nexec %q -s -c %q %q "$@"\n' \
        "$PY27" "$WSTEST_SHIM" "$site" >"$AUTOBAHN_HOME/wstest"
    chmod +x "$AUTOBAHN_HOME/wstest"
    AUTOBAHN_READY=1
    info "wstest: $("${WSTEST[@]}" --autobahnversion 2>/dev/null | tr '\n' ' ')(${AUTOBAHN_HOME#"$ROOT_DIR"/}/wstest)"
}

# ---------------------------------------------------------------------------
# testees

WSX_EXAMPLES_BUILT=0
ECHO_SERVER_CMD=()
AUTOBAHN_CLIENT_CMD=()

# autobahn_testees: resolve ECHO_SERVER_CMD and AUTOBAHN_CLIENT_CMD, building
# the wsx examples (release) once unless overridden.
autobahn_testees() {
    local need_build=0 log json
    [[ -n "$WSX_ECHO_SERVER" ]] && read -ra ECHO_SERVER_CMD <<<"$WSX_ECHO_SERVER" || need_build=1
    [[ -n "$WSX_AUTOBAHN_CLIENT" ]] && read -ra AUTOBAHN_CLIENT_CMD <<<"$WSX_AUTOBAHN_CLIENT" || need_build=1
    [[ $need_build == 0 ]] && return 0
    [[ $WSX_EXAMPLES_BUILT == 1 ]] && return 0
    [[ $WSX_EXAMPLES_BUILT == 2 ]] && return 1 # already failed once
    command -v cargo >/dev/null 2>&1 || { missing "cargo not found"; return; }
    mkdir -p "$REPORTS_DIR"
    log="$REPORTS_DIR/build-examples.log"
    json="$REPORTS_DIR/build-examples.json"
    info "cargo build --release -p wsx --example echo_server --example autobahn_client"
    if ! run_limited - "${BUILD_TIMEOUT:-1200}" bash -c 'exec cargo build --release -p wsx \
        --example echo_server --example autobahn_client \
        --message-format=json-render-diagnostics >"$1" 2>"$2"' _ "$json" "$log"; then
        WSX_EXAMPLES_BUILT=2
        tail_log "$log" 60
        err "building the wsx examples failed"
        return 1
    fi
    local paths
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
print(exe.get("autobahn_client", ""))
EOF
)"
    local echo_bin client_bin
    { read -r echo_bin; read -r client_bin; } <<<"$paths"
    if [[ ! -x "$echo_bin" || ! -x "$client_bin" ]]; then
        WSX_EXAMPLES_BUILT=2
        err "could not find the built examples (echo_server='$echo_bin', autobahn_client='$client_bin')"
        return 1
    fi
    [[ -z "$WSX_ECHO_SERVER" ]] && ECHO_SERVER_CMD=("$echo_bin")
    [[ -z "$WSX_AUTOBAHN_CLIENT" ]] && AUTOBAHN_CLIENT_CMD=("$client_bin")
    WSX_EXAMPLES_BUILT=1
}

# ---------------------------------------------------------------------------
# spec + check

# autobahn_spec TEMPLATE OUT URL OUTDIR: write a wstest spec from a template
# in autobahn/, filling in the URL, outdir, agent and case selection.
autobahn_spec() {
    python3 - "$@" "$AUTOBAHN_AGENT" "$AUTOBAHN_CASES" "$AUTOBAHN_EXCLUDE" <<'EOF'
import json, sys
template, out, url, outdir, agent, cases, exclude = sys.argv[1:8]
spec = json.load(open(template))
spec = {k: v for k, v in spec.items() if not k.startswith("_")}
split = lambda s: [p.strip() for p in s.split(",") if p.strip()]
spec["outdir"] = outdir
if "servers" in spec:  # fuzzingclient: we test a server
    for s in spec["servers"]:
        s["url"] = url
        s["agent"] = agent
else:                  # fuzzingserver: we test a client
    spec["url"] = url
spec["cases"] = split(cases)
spec["exclude-cases"] = split(exclude)
spec.setdefault("exclude-agent-cases", {})
json.dump(spec, open(out, "w"), indent=2, sort_keys=True)
EOF
}

# autobahn_check ROLE OUTDIR: expected case ids from the suite itself, then
# the checker over index.json.
autobahn_check() {
    local role=$1 outdir=$2
    if ! "$PY27" -s "$ROOT_DIR/scripts/lib/autobahn_cases.py" --site "$(autobahn_site)" \
        "$outdir/spec.json" >"$outdir/expected_cases.json"; then
        err "could not list the expected cases"
        return 1
    fi
    python3 "$ROOT_DIR/scripts/autobahn_check.py" --role "$role" --agent "$AUTOBAHN_AGENT" \
        --expected "$outdir/expected_cases.json" "$outdir"
}

# ---------------------------------------------------------------------------
# roles

# autobahn_server_role: wstest fuzzingclient against the echo server.
autobahn_server_role() {
    local outdir="$REPORTS_DIR/server" port pid rc=0 t0
    autobahn_install || return
    autobahn_testees || return
    rm -rf "$outdir"
    mkdir -p "$outdir"
    port="$(free_port)" || return 1
    autobahn_spec "$ROOT_DIR/autobahn/fuzzingclient.json" "$outdir/spec.json" \
        "ws://127.0.0.1:$port" "$outdir" || return 1
    info "starting echo server: ${ECHO_SERVER_CMD[*]} 127.0.0.1:$port"
    bg_start "$outdir/echo_server.log" "$((AUTOBAHN_TIMEOUT + 120))" "${ECHO_SERVER_CMD[@]}" "127.0.0.1:$port"
    pid=$BG_PID
    if ! wait_port "$port" "$AUTOBAHN_LISTEN_TIMEOUT" "$pid"; then
        bg_stop "$pid"
        tail_log "$outdir/echo_server.log"
        err "echo server did not start listening on 127.0.0.1:$port"
        return 1
    fi
    info "wstest -m fuzzingclient (cases: '$AUTOBAHN_CASES', excluded: '$AUTOBAHN_EXCLUDE'; log: ${outdir#"$ROOT_DIR"/}/wstest.log)"
    t0=$(now_s)
    run_limited "$outdir/wstest.log" "$AUTOBAHN_TIMEOUT" \
        "${WSTEST[@]}" -m fuzzingclient -s "$outdir/spec.json" || rc=$?
    info "wstest finished in $(fmt_duration $(($(now_s) - t0))) (exit $rc)"
    if ! bg_alive "$pid"; then
        wait "$pid" 2>/dev/null
        err "echo server exited during the run (exit $?)"
        tail_log "$outdir/echo_server.log"
        rc=1
    fi
    bg_stop "$pid"
    if [[ $rc != 0 ]]; then
        [[ $rc == 124 || $rc == 137 ]] && err "wstest timed out after ${AUTOBAHN_TIMEOUT}s"
        tail_log "$outdir/wstest.log"
    fi
    autobahn_check server "$outdir" || rc=1
    return $((rc != 0))
}

# autobahn_client_role: the wsx client against wstest fuzzingserver.
autobahn_client_role() {
    local outdir="$REPORTS_DIR/client" port pid rc=0 t0
    autobahn_install || return
    autobahn_testees || return
    rm -rf "$outdir"
    mkdir -p "$outdir"
    port="$(free_port)" || return 1
    autobahn_spec "$ROOT_DIR/autobahn/fuzzingserver.json" "$outdir/spec.json" \
        "ws://127.0.0.1:$port" "$outdir" || return 1
    info "starting wstest -m fuzzingserver on 127.0.0.1:$port (log: ${outdir#"$ROOT_DIR"/}/wstest.log)"
    # --webport 0: no embedded web server (it would take port 8080).
    bg_start "$outdir/wstest.log" "$((AUTOBAHN_TIMEOUT + 120))" \
        "${WSTEST[@]}" -m fuzzingserver -s "$outdir/spec.json" --webport 0
    pid=$BG_PID
    if ! wait_port "$port" "$AUTOBAHN_LISTEN_TIMEOUT" "$pid"; then
        bg_stop "$pid"
        tail_log "$outdir/wstest.log"
        err "wstest fuzzingserver did not start listening on 127.0.0.1:$port"
        return 1
    fi
    info "running client: ${AUTOBAHN_CLIENT_CMD[*]} ws://127.0.0.1:$port (log: ${outdir#"$ROOT_DIR"/}/autobahn_client.log)"
    t0=$(now_s)
    run_limited "$outdir/autobahn_client.log" "$AUTOBAHN_TIMEOUT" \
        "${AUTOBAHN_CLIENT_CMD[@]}" "ws://127.0.0.1:$port" || rc=$?
    info "client finished in $(fmt_duration $(($(now_s) - t0))) (exit $rc)"
    if [[ $rc != 0 ]]; then
        [[ $rc == 124 || $rc == 137 ]] && err "client timed out after ${AUTOBAHN_TIMEOUT}s"
        tail_log "$outdir/autobahn_client.log"
    fi
    if ! bg_alive "$pid"; then
        err "wstest fuzzingserver exited during the run"
        tail_log "$outdir/wstest.log"
        rc=1
    fi
    bg_stop "$pid"
    autobahn_check client "$outdir" || rc=1
    return $((rc != 0))
}

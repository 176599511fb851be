#!/usr/bin/env bash
# Autobahn|Testsuite on its own, without cargo test.
#
#   bash scripts/autobahn.sh install   # install Python 2.7 (if needed) + wstest, print where
#   bash scripts/autobahn.sh server    # wstest fuzzingclient vs echo_server -> reports/server
#   bash scripts/autobahn.sh client    # autobahn_client vs wstest fuzzingserver -> reports/client
#   bash scripts/autobahn.sh [all]     # both roles (same as: scripts/test.sh autobahn)
#   bash scripts/autobahn.sh check     # re-run the checker on existing reports
#
# Same environment knobs as scripts/test.sh (AUTOBAHN_CASES, AUTOBAHN_EXCLUDE, ...),
# e.g. AUTOBAHN_CASES="1.*,2.*" bash scripts/autobahn.sh server
set -uo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT_DIR" || exit 1
# shellcheck source=lib/common.sh
source "$ROOT_DIR/scripts/lib/common.sh"
# shellcheck source=lib/autobahn.sh
source "$ROOT_DIR/scripts/lib/autobahn.sh"
install_cleanup_trap

case "${1:-all}" in
    install)
        autobahn_install || exit 1
        info "run wstest by hand with: ${AUTOBAHN_HOME#"$ROOT_DIR"/}/wstest -m ..."
        ;;
    server) autobahn_server_role ;;
    client) autobahn_client_role ;;
    all) exec bash "$ROOT_DIR/scripts/test.sh" autobahn ;;
    check)
        autobahn_install || exit 1
        rc=0
        for role in server client; do
            [[ -f "$REPORTS_DIR/$role/spec.json" ]] && { autobahn_check "$role" "$REPORTS_DIR/$role" || rc=1; }
        done
        exit $rc
        ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac

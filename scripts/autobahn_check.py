#!/usr/bin/env python3
"""Check an Autobahn|Testsuite report directory (its index.json).

Prints ONE summary line for the role, e.g.

    autobahn server: 301 cases, 301 OK, 0 INFORMATIONAL, 0 NON-STRICT, 0 FAILED, 0 UNIMPLEMENTED

then one line per case that did not pass. Exits 0 only if

  * the report has results for the agent,
  * the set of case ids equals the expected set (so a testee that crashed
    or stopped early cannot pass), and
  * every case's `behavior` and `behaviorClose` is OK or INFORMATIONAL
    (NON-STRICT, UNIMPLEMENTED, FAILED, WRONG CODE, UNCLEAN, ... fail).

Usage:
    autobahn_check.py --role server --agent wsx --expected expected_cases.json reports/server
    autobahn_check.py --role client reports/client/index.json --expected-count 301
"""
import argparse
import json
import os
import sys

PASS = ("OK", "INFORMATIONAL")
# Summary columns, in order of severity; anything else counts as FAILED.
COLUMNS = ("OK", "INFORMATIONAL", "NON-STRICT", "FAILED", "UNIMPLEMENTED")
SEVERITY = {"OK": 0, "INFORMATIONAL": 1, "NON-STRICT": 2, "UNIMPLEMENTED": 3, "FAILED": 4}


def case_key(case_id):
    try:
        return tuple(int(x) for x in case_id.split("."))
    except ValueError:
        return (1 << 30, case_id)


def column(value):
    return value if value in SEVERITY else "FAILED"


def effective(behavior, close):
    """The worse of the two behaviors, mapped to a summary column."""
    a, b = column(behavior), column(close)
    return a if SEVERITY[a] >= SEVERITY[b] else b


def case_detail(report_dir, entry):
    """The `result` / `resultClose` text from the per-case JSON report."""
    name = entry.get("reportfile")
    if not name:
        return ""
    try:
        with open(os.path.join(report_dir, name)) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        return ""
    parts = []
    for key in ("result", "resultClose"):
        text = " ".join(str(rep.get(key) or "").split())
        if text:
            parts.append(text[:160])
    return " | ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="report directory or its index.json")
    ap.add_argument("--role", required=True, help="label for the summary line (server/client)")
    ap.add_argument("--agent", default="wsx", help="agent name in the report (default: wsx)")
    ap.add_argument("--expected", help="JSON list of the expected case ids")
    ap.add_argument("--expected-count", type=int, help="expected number of cases")
    ap.add_argument("--list-informational", action="store_true", help="also list INFORMATIONAL cases")
    args = ap.parse_args()

    label = "autobahn %s" % args.role
    path = args.report
    if os.path.isdir(path):
        path = os.path.join(path, "index.json")
    report_dir = os.path.dirname(os.path.abspath(path))

    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("%s: FAILED: no usable report at %s (%s)" % (label, path, e))
        return 1

    if args.agent not in index:
        print("%s: FAILED: no results for agent %r in %s (agents: %s)"
              % (label, args.agent, path, ", ".join(sorted(index)) or "none"))
        return 1
    results = index[args.agent]

    counts = dict.fromkeys(COLUMNS, 0)
    bad, informational = [], []
    for cid in sorted(results, key=case_key):
        entry = results[cid]
        behavior = entry.get("behavior", "MISSING")
        close = entry.get("behaviorClose", "MISSING")
        eff = effective(behavior, close)
        counts[eff] += 1
        if behavior not in PASS or close not in PASS:
            bad.append((cid, behavior, close, entry))
        elif eff == "INFORMATIONAL":
            informational.append(cid)

    problems = []
    expected = None
    if args.expected:
        with open(args.expected) as f:
            expected = json.load(f)
    if expected is not None:
        missing = sorted(set(expected) - set(results), key=case_key)
        extra = sorted(set(results) - set(expected), key=case_key)
        if missing:
            problems.append("%d expected cases missing: %s" % (len(missing), abbreviate(missing)))
        if extra:
            problems.append("%d unexpected cases: %s" % (len(extra), abbreviate(extra)))
    want = args.expected_count if args.expected_count is not None else (len(expected) if expected is not None else None)
    if want is not None and len(results) != want:
        problems.append("expected %d cases, report has %d" % (want, len(results)))
    if want is None:
        problems.append("no expected case list/count given")

    ok = not bad and not problems
    summary = "%s: %d cases, %s" % (label, len(results), ", ".join("%d %s" % (counts[c], c) for c in COLUMNS))
    if problems:
        summary += ", case set WRONG"
    print(summary)
    for p in problems:
        print("  %s" % p)
    for cid, behavior, close, entry in bad:
        detail = case_detail(report_dir, entry)
        print("  %-8s behavior=%s behaviorClose=%s%s" % (cid, behavior, close, ("  -- " + detail) if detail else ""))
    if informational:
        if args.list_informational:
            print("  informational: %s" % ", ".join(informational))
    if not ok:
        print("%s: FAILED (details: %s)" % (label, os.path.join(report_dir, "index.html")))
    return 0 if ok else 1


def abbreviate(ids, limit=20):
    if len(ids) <= limit:
        return ", ".join(ids)
    return ", ".join(ids[:limit]) + ", ... (%d more)" % (len(ids) - limit)


if __name__ == "__main__":
    sys.exit(main())

"""Print, as a JSON list, the Autobahn case ids a wstest spec selects.

Runs under the Python 2.7 that has autobahntestsuite, and uses the suite's
own case list and pattern logic, so the expected set always matches what
wstest itself would run:

    python2.7 -s scripts/lib/autobahn_cases.py [--site SITE_PACKAGES] SPEC.json > expected_cases.json

--site: the site-packages directory autobahntestsuite was installed into
(put first on sys.path, as the wstest wrapper does).
"""
import json
import site
import sys


def main():
    args = sys.argv[1:]
    if args[:1] == ["--site"]:
        n = len(sys.path)
        site.addsitedir(args[1])
        sys.path[:] = sys.path[n:] + sys.path[:n]
        args = args[2:]
    from autobahntestsuite.case import (Cases, CaseCategories, CaseSubCategories,
                                        CaseSetname, CaseBasename)
    from autobahntestsuite.caseset import CaseSet

    spec = json.load(open(args[0]))
    cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
    cases = cs.parseSpecCases(spec)
    unknown = [c for c in cases if c not in cs.CasesIndices]
    if unknown:
        sys.stderr.write("unknown case ids in spec: %s\n" % ", ".join(unknown))
        return 1
    sys.stdout.write(json.dumps(cases) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

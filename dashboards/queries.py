#!/usr/bin/env python3
"""Print every panel target expression of the switchboard dashboard as plain PromQL.

Grafana variables are replaced so the result can be sent to Prometheus as is:
  $vendor, $operation          -> .*   (the dashboards' "All" value)
  $__rate_interval, $__interval -> 1m

Output: one JSON object per line: {"panel": <title>, "refId": <refId>, "expr": <PromQL>}

Usage: python3 dashboards/queries.py [path/to/switchboard.json]
Standard library only.
"""
import json
import os
import re
import sys

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "switchboard.json")

# Longer names first; \b keeps $__interval from matching inside $__interval_ms etc.
SUBSTITUTIONS = [
    (r"\$\{__rate_interval\}|\$__rate_interval\b", "1m"),
    (r"\$\{__interval\}|\$__interval\b", "1m"),
    (r"\$\{vendor(?::[a-z]+)?\}|\$vendor\b", ".*"),
    (r"\$\{operation(?::[a-z]+)?\}|\$operation\b", ".*"),
]


def substitute(expr):
    for pattern, value in SUBSTITUTIONS:
        expr = re.sub(pattern, lambda _m: value, expr)
    return expr


def walk(panels):
    """Yield every non-row panel, including panels nested in collapsed rows."""
    for panel in panels or []:
        yield panel
        yield from walk(panel.get("panels"))


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_PATH
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
    count = 0
    for panel in walk(dashboard.get("panels")):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if not expr:
                continue
            print(json.dumps({
                "panel": panel.get("title", ""),
                "refId": target.get("refId", ""),
                "expr": substitute(expr),
            }))
            count += 1
    if count == 0:
        print("no panel target expressions found in " + path, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Differences of the API server's apiserver_request_total between two scrapes of
/metrics, with a baseline (a quiet interval of the same length) subtracted.

Usage: apimetrics.py BEFORE AFTER [BASE_BEFORE BASE_AFTER]
Prints JSON: {"total", "writes", "by_verb", "by_resource"} of (after - before) -
(base_after - base_before). Leases are left out (KWOK renews one per node every few
seconds, whoever else is measured). Writes are mutating verbs that are not dry runs.
"""
import json
import re
import sys
from collections import Counter

LINE = re.compile(r'^apiserver_request_total\{(.*)\} ([0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
MUTATING = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE"}


def scrape(path):
    out = Counter()
    for line in open(path):
        m = LINE.match(line.strip())
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(1)))
        if labels.get("resource") == "leases":
            continue
        key = (labels.get("verb", ""), labels.get("resource", "") or "(non-resource)",
               labels.get("subresource", ""), labels.get("dry_run", ""))
        out[key] += float(m.group(2))
    return out


def delta(a, b):
    before, after = scrape(a), scrape(b)
    return Counter({k: after[k] - before.get(k, 0) for k in after})


def main():
    d = delta(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 4:
        base = delta(sys.argv[3], sys.argv[4])
        d = Counter({k: d.get(k, 0) - base.get(k, 0) for k in set(d) | set(base)})
    by_verb, by_resource = Counter(), Counter()
    writes = 0
    for (verb, resource, sub, dry), n in d.items():
        if n == 0:
            continue
        by_verb[verb + (" (dry run)" if dry else "")] += n
        by_resource[resource + ("/" + sub if sub else "")] += n
        if verb in MUTATING and not dry:
            writes += n
    print(json.dumps({
        "total": int(round(sum(by_verb.values()))),
        "writes": int(round(writes)),
        "by_verb": {k: int(round(v)) for k, v in sorted(by_verb.items()) if round(v)},
        "by_resource": {k: int(round(v)) for k, v in sorted(by_resource.items()) if round(v)},
    }))


if __name__ == "__main__":
    main()

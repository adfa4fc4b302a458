#!/usr/bin/env python3
"""Counts the API requests one command made, from the testbed's audit log.

Usage: auditcount.py AUDIT_LOG SKIP_BYTES USER [AFTER UNTIL]
Reads the events appended after byte SKIP_BYTES, keeps those of USER (the admin
user drover and kubectl run as here; the controllers, the scheduler and KWOK have
users of their own; the caller makes sure nothing else runs as USER meanwhile),
leaves out scrapes of /metrics, and prints JSON {"total", "writes", "by_verb",
"user_agents"}.
Writes are create/update/patch/delete events without dryRun in the request URI.
With AFTER and UNTIL (RFC 3339 instants), only requests the server received in
(AFTER, UNTIL] are counted: the requests between two log lines of a running process.
"""
import json
import sys
from collections import Counter
from datetime import datetime


def instant(text):
    """An RFC 3339 instant with any number of fractional digits, as a UTC datetime."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    return datetime.fromisoformat(text)

WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def main():
    path, skip, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    window = (instant(sys.argv[4]), instant(sys.argv[5])) if len(sys.argv) > 5 else None
    by_verb, agents = Counter(), Counter()
    writes = 0
    with open(path, "rb") as f:
        f.seek(skip)
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if (ev.get("user") or {}).get("username") != user:
                continue
            if ev.get("requestURI", "").startswith("/metrics"):
                continue
            if window:
                at = instant(ev.get("requestReceivedTimestamp", ""))
                if not window[0] < at <= window[1]:
                    continue
            dry = "dryRun" in ev.get("requestURI", "")
            verb = ev.get("verb", "") + (" (dry run)" if dry else "")
            res = (ev.get("objectRef") or {}).get("resource", "")
            by_verb[f"{verb} {res}".strip()] += 1
            agents[ev.get("userAgent", "")] += 1
            if ev.get("verb") in WRITES and not dry:
                writes += 1
    print(json.dumps({"total": sum(by_verb.values()), "writes": writes,
                      "by_verb": dict(sorted(by_verb.items())),
                      "user_agents": dict(agents)}))


if __name__ == "__main__":
    main()

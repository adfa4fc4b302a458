#!/usr/bin/env python3
"""When did USER first write a DaemonSet in NAMESPACE, after byte SKIP_BYTES of the
testbed's audit log?

Usage: firstwrite.py AUDIT_LOG SKIP_BYTES USER NAMESPACE
Prints the API server's requestReceivedTimestamp of the first create/update/patch of
a daemonsets object (not a dry run) as unix seconds, or nothing if there is none yet.
The API server and the bench run on one machine, so this clock is the bench's clock.
"""
import json
import sys
from datetime import datetime

WRITES = {"create", "update", "patch"}


def main():
    path, skip, user, ns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(path, "rb") as f:
        f.seek(skip)
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ref = ev.get("objectRef") or {}
            if (
                ev.get("stage") == "ResponseComplete"
                and ev.get("verb") in WRITES
                and (ev.get("user") or {}).get("username") == user
                and ref.get("resource") == "daemonsets"
                and ref.get("namespace") == ns
                and "dryRun" not in (ev.get("requestURI") or "")
            ):
                ts = ev["requestReceivedTimestamp"].replace("Z", "+00:00")
                print("%.3f" % datetime.fromisoformat(ts).timestamp())
                return


if __name__ == "__main__":
    main()

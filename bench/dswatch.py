#!/usr/bin/env python3
"""Timestamps a DaemonSet watch stream and reports the DaemonSet controller's own
rollout durations.

Usage: kubectl get ds -n NS --watch --output-watch-events -o json | dswatch.py OUT.jsonl
  records one line per event: {"t": unix seconds, "name", "group", "generation",
  "observed", "desired", "updated", "available", "unavailable"}.

       dswatch.py --report OUT.jsonl --since T0 --stages p0 p1 p2 [--bakes 5 5 5]
  prints JSON: per stage the DaemonSet controller's rollout time (first spec update
  of a DaemonSet in the stage seen after T0 to the last rollout of the stage
  complete; DaemonSets within a stage roll out concurrently), their sum, and the sum
  plus the bake times.
"""
import json
import sys
import time


def record(out_path):
    dec = json.JSONDecoder()
    buf = ""
    with open(out_path, "a", buffering=1) as out:
        for chunk in iter(lambda: sys.stdin.readline(), ""):
            buf += chunk
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    ev, end = dec.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                t = time.time()
                obj = ev.get("object", ev)
                md, st = obj.get("metadata", {}), obj.get("status", {})
                out.write(json.dumps({
                    "t": t,
                    "name": md.get("name"),
                    "group": md.get("labels", {}).get("drover.dev/group"),
                    "generation": md.get("generation", 0),
                    "observed": st.get("observedGeneration", 0),
                    "desired": st.get("desiredNumberScheduled", 0),
                    "updated": st.get("updatedNumberScheduled", 0),
                    "available": st.get("numberAvailable", 0),
                    "unavailable": st.get("numberUnavailable", 0),
                }) + "\n")


def complete(e):
    return (e["observed"] >= e["generation"] and e["updated"] == e["desired"]
            and e["available"] == e["desired"] and not e["unavailable"])


def report(path, since, stages, bakes):
    events = [json.loads(l) for l in open(path) if l.strip()]
    events.sort(key=lambda e: e["t"])
    base_gen = {}
    for e in events:
        if e["t"] < since:
            base_gen[e["name"]] = e["generation"]
    start, done = {}, {}
    for e in events:
        if e["t"] < since:
            continue
        n = e["name"]
        if n not in start and e["generation"] > base_gen.get(n, 0):
            start[n] = e["t"]
        if n in start and complete(e) and e["generation"] > base_gen.get(n, 0):
            done.setdefault(n, e["t"])
    groups = {}
    for e in events:
        groups[e["name"]] = e["group"]
    rows = []
    for i, stage_groups in enumerate(stages):
        names = [n for n, g in groups.items() if g in stage_groups.split(",")]
        s = [start[n] for n in names if n in start]
        d = [done[n] for n in names if n in done]
        rows.append({
            "stage": i + 1,
            "daemonsets": len(names),
            "updated": len(s),
            "completed": len(d),
            "controller_seconds": (max(d) - min(s)) if s and d else None,
            "first_update": min(s) if s else None,
            "last_complete": max(d) if d else None,
        })
    total = sum(r["controller_seconds"] or 0 for r in rows)
    print(json.dumps({
        "stages": rows,
        "controller_seconds": total,
        "bake_seconds": sum(bakes),
        "controller_plus_bake": total + sum(bakes),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        args = sys.argv[2:]
        path = args[0]
        since = float(args[args.index("--since") + 1])
        i = args.index("--stages") + 1
        stages = []
        while i < len(args) and not args[i].startswith("--"):
            stages.append(args[i])
            i += 1
        bakes = []
        if "--bakes" in args:
            bakes = [float(b) for b in args[args.index("--bakes") + 1:]]
        report(path, since, stages, bakes)
    else:
        record(sys.argv[1])

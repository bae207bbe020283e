"""Time the ORIGINAL stackdistiller like distill.py --bench, but report CPU
time (time.thread_time) next to wall time, so the ratio with
examples/throughput.rs is meaningful on a loaded machine.

Two measures per round, on the same lines:
  "mode": "to_event"          Distiller.to_event on pre-parsed dicts
                              (JSON parsing excluded, like distill.py --bench)
  "mode": "json.loads+to_event"  json.loads(line) then to_event, i.e. the
                              same work as our distill_bytes (bytes -> event)

/tmp/stv3-oracle-venv/bin/python benches/oracle_cpu.py DEFS INPUT [ROUNDS]
"""
import json
import sys
import time

from stackdistiller import distiller

sys.path.insert(0, "/work/shared/oracle")
from distill import TraitListCondenser  # noqa: E402

defs, path = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
dist = distiller.Distiller(distiller.load_config(defs))
lines = [l for l in open(path, "rb") if l.strip()]
notifs = [json.loads(l) for l in lines]
cond = TraitListCondenser()


def pre_parsed():
    events = 0
    for n in notifs:
        cond.clear()
        if dist.to_event(n, cond) is not None:
            events += 1
    return events


def from_bytes():
    events = 0
    for l in lines:
        cond.clear()
        if dist.to_event(json.loads(l), cond) is not None:
            events += 1
    return events


for r in range(rounds):
    for mode, run in (("to_event", pre_parsed), ("json.loads+to_event", from_bytes)):
        t0, c0 = time.perf_counter(), time.thread_time()
        events = run()
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        print(json.dumps({"round": r, "mode": mode, "notifications": len(notifs), "events": events,
                          "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                          "per_s_wall": round(len(notifs) / wall), "per_s_cpu": round(len(notifs) / cpu)}))

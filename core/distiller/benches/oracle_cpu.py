"""Time the ORIGINAL stackdistiller like distill.py --bench, but report CPU
time (time.thread_time) next to wall time, so the ratio with
examples/throughput.rs is meaningful on a loaded machine.

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
notifs = [json.loads(l) for l in open(path) if l.strip()]
cond = TraitListCondenser()
for r in range(rounds):
    t0, c0 = time.perf_counter(), time.thread_time()
    events = 0
    for n in notifs:
        cond.clear()
        if dist.to_event(n, cond) is not None:
            events += 1
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    print(json.dumps({"round": r, "notifications": len(notifs), "events": events,
                      "wall_s": round(wall, 4), "cpu_s": round(cpu, 4),
                      "per_s_wall": round(len(notifs) / wall), "per_s_cpu": round(len(notifs) / cpu)}))

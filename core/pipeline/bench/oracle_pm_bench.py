"""Time the ORIGINAL winchester 0.56 PipelineManager firing N ready streams (logger pipeline) on SQLite."""
import datetime, json, logging, os, sys, time
sys.path.insert(0, "/work/shared/oracle")
import winchester_run as wr
from winchester import models

N = int(sys.argv[1]); db = sys.argv[2]
logging.basicConfig(level=logging.ERROR)
class A: pass
a = A(); a.db = db; a.event_defs = "/tmp/stv3-oracle-dl/src/winchester-0.56/etc/event_definitions.yaml"
a.triggers = "triggers.yaml"; a.pipelines = "pipelines.yaml"; a.purge = True; a.batch_size = 1000; a.catchall = False
wr.fresh_db(db)
clock = wr.ReplayTimeSync("replay")
dbi, tm, pm = wr.make_managers(a, clock)
t0 = datetime.datetime(2015, 3, 1)
clock.set(t0)
ti = time.perf_counter()
for i in range(N):
    tm.add_event({"message_id": "bench-%d" % i, "event_type": "bench.fire", "timestamp": t0 + datetime.timedelta(milliseconds=i), "instance_id": "inst-%d" % i})
ingest = time.perf_counter() - ti
clock.set(t0 + datetime.timedelta(hours=1))
tf = time.perf_counter(); fired = 0
while True:
    n = pm.process_ready_streams(1000)
    fired += n
    if not n: break
fire = time.perf_counter() - tf
print(json.dumps({"impl": "winchester 0.56", "db": db, "streams": N, "fired": fired, "ingest_s": round(ingest, 3), "fire_s": round(fire, 3), "streams_per_s": round(N / fire, 1)}))

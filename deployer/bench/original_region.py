#!/usr/bin/env python3
"""Run the ORIGINAL StackTach.v3 ingest + pipeline path as a region for
`stv3ctl bench`: winchester 0.56 + stackdistiller 0.12 (PyPI, converted to
Python 3 by /work/shared/oracle/setup.sh) on RabbitMQ and MariaDB.

Run it with the oracle venv's python (it needs winchester, stackdistiller,
timex, kombu, SQLAlchemy 1.3 and PyMySQL):

  python original_region.py --amqp amqp://guest:guest@127.0.0.1:5672/%2f \\
      --queues stv3bench.cell1,stv3bench.cell2 \\
      --db mysql+pymysql://root@127.0.0.1:3306/stv3bench_orig \\
      --event-definitions PATH --triggers PATH --pipelines PATH \\
      --expect N --timeout SECONDS --workers 2 --out result.json

yagi 0.23 is Python-2 only, so this script does what a yagi-event process
with `apps = winchester.yagi_handler.WinchesterHandler` did, and runs
winchester's own PipelineManager the way `pipeline_worker` did:

* setup: the database is dropped and created again, and the schema comes from
  winchester.models.Base.metadata.create_all (winchester's alembic migrations
  are not installed in the venv). The queues must already exist (checked
  passively; never declared or changed here).
* one consumer process per queue (like one yagi-event per cell): kombu
  basic.consume with prefetch --prefetch (100 = yagi's max_messages), and for
  every message: JSON decode -> TimeSync.publish(timestamp) ->
  TriggerManager.add_notification (stackdistiller + save + triggers) -> ack.
  So a message is acked after the handler returned, as yagi's AUTO_ACK
  WinchesterHandler did. yagi polled with basic.get and slept poll_delay
  (1 s) per loop; this driver does not sleep, which favours the original.
  If add_notification raises, the message is requeued once (winchester
  dedupes redeliveries on message_id); if it fails again it is acked and
  counted in "errors".
* --workers pipeline-manager processes, each running winchester's
  PipelineManager.process_ready_streams (fire pass, then expire pass), and
  sleeping --worker-delay seconds when a round did nothing (pipeline_worker
  slept pipeline_worker_delay=10 s; 1 s here so the end of the run is not
  padded). Handler names available to --pipelines: logger (LoggingHandler),
  usage (UsageHandler), notabene (counts the env_keys notifications it would
  have published instead of publishing them to the broker).
* clock: --clock wall (default) is winchester's TimeSync without a
  time_sync_endpoint, i.e. utcnow(), exactly what yagi + pipeline_worker did
  in production. --clock replay emulates a time_sync service: "now" in a
  consumer is the timestamp of the notification it is processing, and the
  pipeline workers see the newest timestamp any consumer published (useful
  for data with old timestamps, such as the oracle's gen.py output).
* stop: when --expect messages have been acked in total and the pipeline has
  nothing left to do (every worker has run a whole fire+expire round that
  found nothing since then, and no stream is ready to fire or expire), or at
  --timeout seconds after the children started (then it reports what it
  got, "timed_out": true). With two workers the original sometimes leaves a
  stream in firing/expiring ("locked while trying to set 'complete' state");
  such streams show up in "streams_by_state" and are not waited for.
* completed streams are kept (state completed) unless --purge, so that the
  stream counts come from the DB.

Output (--out): one JSON document
  {"consumed", "events_stored", "streams", "streams_fired", "first_consume_at",
   "last_consume_at", "elapsed_s", "consume_rate", "timed_out",
   "per_process": [{"name", "cpu_s", "peak_rss_kb"}], ...extra keys}
Progress goes to stderr. Exit codes: 0 = ran (also on timeout), 2 = bad
arguments or missing python modules, 3 = DB unreachable/unusable,
4 = broker unreachable or a queue is missing, 5 = a child process failed.
"""
import argparse
import datetime
import json
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import resource
import signal
import socket
import sys
import time
import traceback

LOG = logging.getLogger("original_region")

EXIT_ARGS, EXIT_DB, EXIT_AMQP, EXIT_CHILD = 2, 3, 4, 5


def die(code, msg):
    sys.stderr.write("original_region: error: %s\n" % msg)
    sys.exit(code)


try:
    import dateutil.parser
    import kombu
    import sqlalchemy
    from sqlalchemy.engine.url import make_url
    from winchester import models
    from winchester import pipeline_handler
    from winchester import time_sync
    from winchester.db import DBInterface
    from winchester.pipeline_manager import PipelineManager
    from winchester.trigger_manager import TriggerManager
except ImportError as e:  # pragma: no cover - environment problem
    die(EXIT_ARGS, "cannot import %s (%s). Run this with the oracle venv's "
        "python (/tmp/stv3-oracle-venv/bin/python after "
        "`bash /work/shared/oracle/setup.sh`)." % (e.name, e))

EPOCH = datetime.datetime(1970, 1, 1)


# ------------------------------------------------------------------ clocks
class ReplayClock(time_sync.TimeSync):
    """TimeSync(publishes=True) + a shared 'time_sync service' (an mp.Value
    holding the newest published timestamp, seconds since the epoch)."""

    def __init__(self, shared, publishes):
        super(ReplayClock, self).__init__({}, publishes=publishes)
        self.shared = shared
        self.last_tyme = None

    def publish(self, tyme):
        dt = dateutil.parser.parse(tyme)
        if dt.tzinfo is not None:
            dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        self.last_tyme = dt
        secs = (dt - EPOCH).total_seconds()
        with self.shared.get_lock():
            if secs > self.shared.value:
                self.shared.value = secs

    def current_time(self):
        if self.publishes and self.last_tyme is not None:
            return self.last_tyme
        v = self.shared.value
        if v <= 0:
            return datetime.datetime.utcnow()
        return EPOCH + datetime.timedelta(seconds=v)


def make_clock(a, shared, publishes):
    if a.clock == "replay":
        return ReplayClock(shared, publishes)
    # No time_sync_endpoint: publish() is a no-op, current_time() = utcnow().
    return time_sync.TimeSync({}, publishes=publishes)


# ------------------------------------------------------------------ handlers
class CountingNotabeneHandler(pipeline_handler.PipelineHandlerBase):
    """Same parameters as NotabeneHandler; counts the env[env_keys]
    notifications it would publish on commit instead of publishing them."""
    published = 0

    def __init__(self, **kw):
        super(CountingNotabeneHandler, self).__init__(**kw)
        self.env_keys = kw.get("env_keys", [])
        self.pending = 0

    def handle_events(self, events, env):
        self.pending = sum(len(env.get(k, [])) for k in self.env_keys)
        return events

    def commit(self):
        CountingNotabeneHandler.published += self.pending

    def rollback(self):
        pass


HANDLERS = {
    "logger": pipeline_handler.LoggingHandler,
    "usage": pipeline_handler.UsageHandler,
    "notabene": CountingNotabeneHandler,
}


def winchester_config(a):
    return {
        "config_path": ["."],
        "database": {"url": a.db},
        "distiller_config": os.path.abspath(a.event_definitions),
        "trigger_definitions": os.path.abspath(a.triggers),
        "pipeline_config": os.path.abspath(a.pipelines),
        "pipeline_handlers": {},        # the handler map is passed directly
        "purge_completed_streams": a.purge,
        "pipeline_worker_batch_size": a.batch_size,
        "pipeline_worker_delay": a.worker_delay,
        "catch_all_notifications": False,
    }


# ------------------------------------------------------------------ children
def proc_stats(name):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
                    break
    except OSError:
        pass
    if peak is None:
        peak = ru.ru_maxrss
    return {"name": name, "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
            "peak_rss_kb": peak}


def child_main(kind, name, target, results, args):
    """Wrapper: run target, then always report stats (+ extras)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    extra = {}
    ok = True
    try:
        extra = target(*args) or {}
    except Exception:
        ok = False
        LOG.error("%s failed:\n%s", name, traceback.format_exc())
    st = proc_stats(name)
    st.update({"kind": kind, "ok": ok})
    st.update(extra)
    results.put(st)


def consumer_proc(a, qname, sh):
    config = winchester_config(a)
    clock = make_clock(a, sh["clock"], publishes=True)
    dbi = DBInterface(config["database"])
    tm = TriggerManager(config, db=dbi, time_sync=clock)
    my_count = sh["consumed"][qname]
    errors = 0
    requeued = 0

    def total():
        return sum(v.value for v in sh["consumed"].values())

    def note_ack():
        now = time.time()
        with my_count.get_lock():
            my_count.value += 1
        with sh["first"].get_lock():
            if sh["first"].value == 0:
                sh["first"].value = now
        with sh["last"].get_lock():
            if now > sh["last"].value:
                sh["last"].value = now

    def on_message(message):
        nonlocal errors, requeued
        try:
            body = message.body
            if isinstance(body, (bytes, bytearray)):
                body = body.decode("utf-8")
            notification = json.loads(body)
            ts = notification.get("timestamp")
            if ts is not None:
                clock.publish(ts)        # what WinchesterHandler did
            tm.add_notification(notification)
        except Exception as e:
            if message.delivery_info.get("redelivered") or \
                    isinstance(e, ValueError):
                errors += 1
                LOG.warning("%s: message failed twice or is not JSON, "
                            "acking it: %s", qname, e)
            else:
                requeued += 1
                LOG.warning("%s: add_notification failed, requeueing: %r",
                            qname, e)
                message.requeue()
                return
        message.ack()
        note_ack()

    conn = kombu.Connection(a.amqp, heartbeat=0)
    conn.connect()
    channel = conn.channel()
    q = kombu.Queue(qname, channel=channel, no_declare=True)
    consumer = kombu.Consumer(channel, queues=[q], on_message=on_message,
                              prefetch_count=a.prefetch, no_ack=False)
    consumer.consume()
    try:
        while not sh["stop_consumers"].is_set():
            if total() >= a.expect:
                break
            try:
                conn.drain_events(timeout=0.5)
            except socket.timeout:
                pass
    finally:
        try:
            consumer.cancel()
        except Exception:
            pass
        conn.release()      # closing the channel requeues unacked messages
    return {"queue": qname, "consumed": my_count.value, "errors": errors,
            "requeued": requeued, "received": tm.received,
            "saved_events": tm.saved_events}


def worker_proc(a, name, idx, sh):
    config = winchester_config(a)
    clock = make_clock(a, sh["clock"], publishes=False)
    dbi = DBInterface(config["database"])
    pm = PipelineManager(config, db=dbi, pipeline_handlers=HANDLERS,
                         time_sync=clock, proc_name=name)
    fired = expired = loaded = rounds = errors = 0
    idle = sh["idle"][idx]
    while not sh["stop_workers"].is_set():
        rounds += 1
        started = time.time()
        try:
            f0, e0 = pm.streams_fired, pm.streams_expired
            fc = pm.process_ready_streams(a.batch_size)
            ec = pm.process_ready_streams(a.batch_size, expire=True)
            fired += pm.streams_fired - f0
            expired += pm.streams_expired - e0
            loaded += fc + ec
        except Exception as e:
            # pipeline_worker re-raised and died (and was restarted by its
            # supervisor); carry on instead.
            errors += 1
            LOG.warning("%s: pipeline round failed: %r", name, e)
            dbi.close()
            fc = ec = 0
            sh["stop_workers"].wait(1.0)
            continue
        if fc == 0 and ec == 0:
            idle.value = started     # a whole round found nothing to do
            sh["stop_workers"].wait(a.worker_delay)
        else:
            idle.value = 0.0
    return {"fired": fired, "expired": expired, "loaded": loaded,
            "rounds": rounds, "errors": errors,
            "notabene_notifications": CountingNotabeneHandler.published}


# ------------------------------------------------------------------ setup
def setup_db(a):
    try:
        url = make_url(a.db)
    except Exception as e:
        die(EXIT_ARGS, "bad --db URL %r: %s" % (a.db, e))
    if url.drivername.startswith("mysql"):
        try:
            import pymysql
        except ImportError:
            die(EXIT_ARGS, "PyMySQL is not installed in this python; run "
                "`%s -m pip install PyMySQL`" % sys.executable)
        if not url.database:
            die(EXIT_ARGS, "--db must name a database: %s" % a.db)
        name = url.database
        if "`" in name:
            die(EXIT_ARGS, "bad database name %r" % name)
        try:
            c = pymysql.connect(host=url.host or "127.0.0.1",
                                port=int(url.port or 3306),
                                user=url.username or "root",
                                password=url.password or "",
                                connect_timeout=10)
        except Exception as e:
            die(EXIT_DB, "cannot connect to MariaDB/MySQL at %s:%s as %s: %s"
                % (url.host, url.port or 3306, url.username, e))
        try:
            with c.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS `%s`" % name)
                cur.execute("CREATE DATABASE `%s` CHARACTER SET utf8mb4"
                            % name)
            c.commit()
        except Exception as e:
            die(EXIT_DB, "cannot (re)create database %s: %s" % (name, e))
        finally:
            c.close()
    elif url.drivername.startswith("sqlite"):
        if url.database and os.path.exists(url.database):
            os.remove(url.database)
    else:
        die(EXIT_ARGS, "unsupported --db driver %r (use mysql+pymysql:// "
            "or sqlite:///)" % url.drivername)
    try:
        engine = sqlalchemy.create_engine(a.db)
        models.Base.metadata.create_all(engine)
        engine.dispose()
    except Exception as e:
        die(EXIT_DB, "cannot create winchester's schema in %s: %s"
            % (a.db, e))


def check_queues(a, queues):
    try:
        conn = kombu.Connection(a.amqp, connect_timeout=10)
        conn.connect()
    except Exception as e:
        die(EXIT_AMQP, "cannot connect to the broker %s: %s"
            % (redact(a.amqp), e))
    depth = {}
    try:
        for q in queues:
            ch = conn.channel()
            try:
                _, n, _ = ch.queue_declare(queue=q, passive=True)
                depth[q] = n
            except Exception as e:
                die(EXIT_AMQP, "queue %r does not exist on %s (declare it "
                    "durable and bind it before running this): %s"
                    % (q, redact(a.amqp), e))
            finally:
                try:
                    ch.close()
                except Exception:
                    pass
    finally:
        conn.release()
    return depth


def redact(url):
    try:
        return repr(make_url(url.replace("amqp://", "mysql://", 1))) \
            .replace("mysql://", "amqp://", 1)
    except Exception:
        return "<amqp url>"


def check_files(a):
    for flag in ("event_definitions", "triggers", "pipelines"):
        p = getattr(a, flag)
        if not os.path.isfile(p):
            die(EXIT_ARGS, "--%s: no such file: %s"
                % (flag.replace("_", "-"), p))
    # Load them once here so config errors are reported before any child
    # starts (same loaders as the children use).
    try:
        config = winchester_config(a)
        config["database"] = {"url": "sqlite://"}
        tm = TriggerManager(config, time_sync=time_sync.TimeSync({}))
        PipelineManager(config, db=tm.db, pipeline_handlers=HANDLERS,
                        time_sync=time_sync.TimeSync({}))
        tm.db.close()
    except Exception as e:
        die(EXIT_ARGS, "cannot load the winchester configs: %r" % (e,))


# ------------------------------------------------------------------ monitor
def pipeline_pending(engine, a, sh):
    """Streams ready to fire or expire now. Streams in firing/expiring are
    not counted: the workers' idle rounds cover in-flight work, and a
    stream the original leaves behind in firing/expiring (its "locked while
    trying to set 'complete' state" error) would otherwise never finish."""
    if a.clock == "replay" and sh["clock"].value > 0:
        now = EPOCH + datetime.timedelta(seconds=sh["clock"].value)
    else:
        now = datetime.datetime.utcnow()
    S = models.StreamState
    st = models.Stream.__table__
    ts = models.PreciseTimestamp()
    fire_states = [int(S.active), int(S.retry_fire)]
    exp_states = [int(S.active), int(S.retry_expire)]
    q = sqlalchemy.select([sqlalchemy.func.count()]).select_from(st).where(
        sqlalchemy.or_(
            sqlalchemy.and_(st.c.state.in_(fire_states),
                            st.c.fire_timestamp < sqlalchemy.literal(now, ts)),
            sqlalchemy.and_(st.c.state.in_(exp_states),
                            st.c.expire_timestamp <
                            sqlalchemy.literal(now, ts))))
    with engine.connect() as c:
        return c.execute(q).scalar()


def db_summary(engine):
    out = {}
    with engine.connect() as c:
        out["events_stored"] = c.execute(
            sqlalchemy.select([sqlalchemy.func.count()]).select_from(
                models.Event.__table__)).scalar()
        st = models.Stream.__table__
        rows = c.execute(sqlalchemy.select(
            [st.c.state, sqlalchemy.func.count()]).group_by(st.c.state))
        by_state = {}
        for state, n in rows:
            try:
                key = models.StreamState(state).name
            except ValueError:
                key = str(state)
            by_state[key] = n
    out["streams_by_state"] = by_state
    out["streams"] = sum(by_state.values())
    S = models.StreamState
    out["streams_fired"] = sum(n for k, n in by_state.items() if k in (
        S.completed.name, S.error.name, S.expire_error.name))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Original StackTach.v3 (winchester 0.56 + stackdistiller "
                    "0.12) region for stv3ctl bench")
    p.add_argument("--amqp", required=True, help="amqp:// URL of the broker")
    p.add_argument("--queues", required=True,
                   help="comma-separated existing durable queues; one "
                        "consumer process per queue")
    p.add_argument("--db", required=True,
                   help="SQLAlchemy URL, e.g. mysql+pymysql://root@127.0.0.1"
                        ":3306/stv3bench_orig (dropped and re-created)")
    p.add_argument("--event-definitions", required=True)
    p.add_argument("--triggers", required=True)
    p.add_argument("--pipelines", required=True)
    p.add_argument("--expect", type=int, required=True,
                   help="stop after this many acked messages (all queues)")
    p.add_argument("--timeout", type=float, required=True,
                   help="seconds (from the start of the children) before "
                        "giving up and reporting what was done")
    p.add_argument("--workers", type=int, default=2,
                   help="pipeline-manager processes (default 2)")
    p.add_argument("--out", required=True, help="result JSON path")
    # optional knobs (defaults = what the benchmark uses)
    p.add_argument("--clock", choices=["wall", "replay"], default="wall")
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1000,
                   help="pipeline_worker_batch_size (default 1000)")
    p.add_argument("--worker-delay", type=float, default=1.0,
                   help="idle sleep of a pipeline worker, seconds")
    p.add_argument("--purge", action="store_true",
                   help="purge completed streams (winchester's default); "
                        "default here: keep them as state completed")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING,
        format="%(asctime)s %(processName)s %(levelname)s %(message)s")
    if not a.verbose:
        # LoggingHandler logs every pipeline run at INFO and UsageHandler
        # logs every failed audit at WARNING; keep the log readable.
        logging.getLogger("winchester").setLevel(logging.ERROR)
    else:
        LOG.setLevel(logging.INFO)

    queues = [q.strip() for q in a.queues.split(",") if q.strip()]
    if not queues:
        die(EXIT_ARGS, "--queues is empty")
    if a.expect < 0 or a.timeout <= 0 or a.workers < 0:
        die(EXIT_ARGS, "--expect >= 0, --timeout > 0, --workers >= 0")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        die(EXIT_ARGS, "--out directory does not exist: %s" % out_dir)

    check_files(a)
    depth = check_queues(a, queues)
    setup_db(a)
    sys.stderr.write("original_region: db %s ready; queues %s; expect %d, "
                     "timeout %gs, %d pipeline workers, clock %s\n"
                     % (make_url(a.db).database, json.dumps(depth), a.expect,
                        a.timeout, a.workers, a.clock))

    ctx = mp.get_context("fork")
    sh = {
        "consumed": {q: ctx.Value("q", 0) for q in queues},
        "first": ctx.Value("d", 0.0),
        "last": ctx.Value("d", 0.0),
        "clock": ctx.Value("d", 0.0),
        "stop_consumers": ctx.Event(),
        "stop_workers": ctx.Event(),
        "idle": [ctx.Value("d", 0.0) for _ in range(a.workers)],
    }
    results = ctx.Queue()
    procs = []
    for q in queues:
        name = "consumer:%s" % q
        procs.append(ctx.Process(
            target=child_main, name=name,
            args=("consumer", name, consumer_proc, results, (a, q, sh))))
    for i in range(a.workers):
        name = "pipeline-worker:%d" % (i + 1)
        procs.append(ctx.Process(
            target=child_main, name=name,
            args=("worker", name, worker_proc, results, (a, name, i, sh))))

    t0 = time.time()
    for pr in procs:
        pr.start()
    consumers = procs[:len(queues)]

    engine = sqlalchemy.create_engine(a.db)  # created after the forks
    timed_out = False
    interrupted = False
    phase = "consume"
    quiet_checks = 0
    t_consumed = None
    last_progress = t0
    try:
        while True:
            time.sleep(0.25)
            now = time.time()
            total = sum(v.value for v in sh["consumed"].values())
            if now - t0 >= a.timeout:
                timed_out = True
                break
            if now - last_progress >= 5:
                last_progress = now
                first = sh["first"].value
                rate = (total / (sh["last"].value - first)
                        if first and sh["last"].value > first else 0.0)
                sys.stderr.write("original_region: %.0fs consumed %d/%d "
                                 "(%.1f msg/s) phase %s\n"
                                 % (now - t0, total, a.expect, rate, phase))
            if phase == "consume":
                dead = [c.name for c in consumers if not c.is_alive()]
                if total >= a.expect:
                    sh["stop_consumers"].set()
                    phase = "pipeline"
                    t_consumed = time.time()
                elif dead:
                    LOG.error("consumer(s) exited early: %s", dead)
                    break
            if phase == "pipeline":
                if a.workers == 0:
                    break
                if not any(w.is_alive() for w in procs[len(queues):]):
                    LOG.error("all pipeline workers exited early")
                    break
                try:
                    pending = pipeline_pending(engine, a, sh)
                except Exception as e:
                    LOG.warning("pipeline check failed: %r", e)
                    pending = 1
                all_idle = all(v.value > t_consumed for v, w in zip(
                    sh["idle"], procs[len(queues):]) if w.is_alive())
                quiet_checks = quiet_checks + 1 \
                    if pending == 0 and all_idle else 0
                if quiet_checks >= 2:
                    break
    except KeyboardInterrupt:
        interrupted = True
    t_end = time.time()
    sh["stop_consumers"].set()
    sh["stop_workers"].set()

    per_process = []
    want = len(procs)
    deadline = time.time() + 60
    while len(per_process) < want and time.time() < deadline:
        try:
            per_process.append(results.get(timeout=1))
        except queue_mod.Empty:
            if not any(pr.is_alive() for pr in procs) and results.empty():
                break
    for pr in procs:
        pr.join(timeout=10)
        if pr.is_alive():
            LOG.error("%s did not stop; terminating it", pr.name)
            pr.terminate()
            pr.join(timeout=5)
    reported = {s["name"] for s in per_process}
    for pr in procs:
        if pr.name not in reported:
            per_process.append({"name": pr.name, "cpu_s": None,
                                "peak_rss_kb": None, "ok": False,
                                "exitcode": pr.exitcode})
    order = {pr.name: i for i, pr in enumerate(procs)}
    per_process.sort(key=lambda s: order.get(s["name"], 99))

    consumed = sum(v.value for v in sh["consumed"].values())
    first, last = sh["first"].value, sh["last"].value
    try:
        summary = db_summary(engine)
    except Exception as e:
        LOG.error("cannot read the result counts from the DB: %r", e)
        summary = {"events_stored": None, "streams": None,
                   "streams_fired": None, "streams_by_state": {}}
    engine.dispose()
    workers = [s for s in per_process if s.get("kind") == "worker"]
    conss = [s for s in per_process if s.get("kind") == "consumer"]
    doc = {
        "consumed": consumed,
        "events_stored": summary["events_stored"],
        "streams": summary["streams"],
        "streams_fired": summary["streams_fired"],
        "first_consume_at": first or None,
        "last_consume_at": last or None,
        "elapsed_s": round(t_end - t0, 3),
        "consume_rate": round(consumed / (last - first), 2)
        if consumed > 1 and last > first else 0.0,
        "timed_out": timed_out,
        "per_process": [{"name": s["name"], "cpu_s": s.get("cpu_s"),
                         "peak_rss_kb": s.get("peak_rss_kb")}
                        for s in per_process],
        # extras
        "expect": a.expect,
        "queues": {s.get("queue"): s.get("consumed") for s in conss},
        "consume_errors": sum(s.get("errors", 0) for s in conss),
        # notifications handed to winchester / events it saved (the rest:
        # not matched by the event definitions, or DuplicateError, which
        # includes winchester's event_type insert race between consumers)
        "ingest": {"received": sum(s.get("received", 0) for s in conss),
                   "saved_events": sum(s.get("saved_events", 0)
                                       for s in conss)},
        "requeued": sum(s.get("requeued", 0) for s in conss),
        "streams_by_state": summary["streams_by_state"],
        "pipeline": {
            "fired": sum(s.get("fired", 0) for s in workers),
            "expired": sum(s.get("expired", 0) for s in workers),
            "errors": sum(s.get("errors", 0) for s in workers),
            "notabene_notifications": sum(
                s.get("notabene_notifications", 0) for s in workers),
        },
        "clock": a.clock,
        "purge_completed_streams": a.purge,
        "children_ok": all(s.get("ok") for s in per_process),
        "original": "winchester 0.56 + stackdistiller 0.12 (py3 fix-up), "
                    "yagi-style kombu consumers",
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, a.out)
    sys.stderr.write("original_region: consumed %d in %.1fs (%.1f msg/s), "
                     "%s events, %s streams (%s fired/expired)%s\n"
                     % (consumed, doc["elapsed_s"], doc["consume_rate"],
                        doc["events_stored"], doc["streams"],
                        doc["streams_fired"],
                        ", TIMED OUT" if timed_out else ""))
    if interrupted:
        return 130
    if not doc["children_ok"]:
        die(EXIT_CHILD, "a child process failed (see the log above); "
            "partial results in %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

// stv3 dashboard: a read-only view over the stv3 REST API.
//
// Plain browser JavaScript, no framework, no build step, no external requests.
// Everything shown comes from the JSON API the page is served next to:
//   /            version discovery (the lowest enabled of v1/v2 is used)
//   /vN/streams/count?state=…&trigger_name=…   counts by state and trigger
//   /vN/events/count                            total events (ingest rate samples)
//   /vN/streams?limit=…, /vN/events?limit=…     recent streams and events
//   /vN/events/{message_id}                     an event's traits (on expand)
//   /vN/streams/{id}?details=true               a stream, its events, the timeline
// Datetimes arrive as {"__type__":"datetime","datetime":"…"} (naive UTC) and
// time ranges as {"__type__":"timex.TimeRange","begin":…,"end":…}.
// A bearer token, when the API needs one, comes from ?token=… (then kept in
// localStorage and removed from the address bar) or from the token box.
"use strict";

(function () {
  const STATES = ["active", "firing", "expiring", "error", "expire_error", "completed", "retry_fire", "retry_expire"];
  // Streams the pipeline has finished with, successfully or not.
  const DONE_STATES = ["completed", "error", "expire_error"];
  const RESERVED = new Set(["message_id", "event_type", "timestamp", "_mark"]);
  const RATE_WINDOW_MS = 60000;
  const RECENT_STREAMS = 15;
  const RECENT_EVENTS = 20;
  const NAME_SCAN = 500;
  const MAX_EVENT_ROWS = 500;
  const TOKEN_KEY = "stv3.ui.token";

  const query = new URLSearchParams(location.search);
  const refreshSeconds = Math.min(3600, Math.max(1, Number(query.get("refresh")) || 5));
  // Everything before /ui is the API's mount point (works behind a path prefix).
  const base = location.pathname.replace(/\/ui(\/.*)?$/, "");

  const st = {
    token: "",
    version: null,
    samples: [], // {t, events, done}
    triggerNames: [],
    refreshNo: 0,
    stateFilter: null,
    openEvents: new Set(),
    openStreamEvents: new Set(),
    timer: null,
    busy: false,
    again: false,
    lastDuration: 0,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      e.setAttribute(k, String(v));
    }
  }

  function slug(name) {
    return String(name).replace(/[^A-Za-z0-9_.-]/g, "_");
  }

  function fmtInt(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : "–";
  }

  function fmtRate(r) {
    if (r === null || !isFinite(r)) return "–";
    if (r < 10) return r.toFixed(2);
    if (r < 100) return r.toFixed(1);
    return Math.round(r).toLocaleString("en-US");
  }

  function isTyped(v, type) {
    return v !== null && typeof v === "object" && v.__type__ === type;
  }

  // Naive-UTC ISO text ("2015-03-01T18:00:00.123456") to epoch milliseconds.
  function isoMillis(iso) {
    if (typeof iso !== "string") return NaN;
    const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?/.exec(iso);
    if (!m) return NaN;
    const frac = (m[2] || "").padEnd(3, "0").slice(0, 3);
    return Date.parse(m[1] + "." + frac + "Z");
  }

  function dtMillis(v) {
    return isTyped(v, "datetime") ? isoMillis(v.datetime) : NaN;
  }

  function fmtIso(iso) {
    return typeof iso === "string" ? iso.replace("T", " ") : "–";
  }

  function fmtDt(v) {
    if (v === null || v === undefined) return "–";
    return isTyped(v, "datetime") ? fmtIso(v.datetime) : fmtValue(v);
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return "null";
    if (isTyped(v, "datetime")) return fmtIso(v.datetime);
    if (isTyped(v, "timex.TimeRange")) return fmtIso(v.begin) + " → " + fmtIso(v.end);
    if (isTyped(v, "timex.Timestamp")) return fmtIso(v.timestamp);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  function typeOf(v) {
    if (v === null || v === undefined) return "null";
    if (isTyped(v, "datetime")) return "datetime";
    if (isTyped(v, "timex.TimeRange")) return "timerange";
    if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
    if (typeof v === "string") return "text";
    return typeof v;
  }

  // ---------------------------------------------------------------- API access

  class HttpError extends Error {
    constructor(status, message, path) {
      super(`${path}: HTTP ${status}${message ? ": " + message : ""}`);
      this.status = status;
    }
  }

  async function get(path) {
    const headers = { Accept: "application/json" };
    if (st.token) headers.Authorization = "Bearer " + st.token;
    let r;
    try {
      r = await fetch(base + path, { headers, cache: "no-store" });
    } catch (e) {
      throw new Error(`${path}: ${e.message || "network error"}`);
    }
    if (!r.ok) {
      let msg = "";
      try {
        const body = await r.json();
        msg = body.message || body.error || "";
      } catch (_) {
        /* not JSON */
      }
      throw new HttpError(r.status, msg, path);
    }
    return r.json();
  }

  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== null && v !== undefined && v !== "") u.set(k, v);
    const s = u.toString();
    return s ? "?" + s : "";
  }

  async function discover() {
    const root = await get("/");
    const ids = (root.versions || []).map((v) => v.id).filter((id) => /^v[12]$/.test(id)).sort();
    return ids[0] || "v1";
  }

  const api = (path, params) => get(`/${st.version}${path}${qs(params)}`);

  async function count(resource, params) {
    const body = await api(`/${resource}/count`, params);
    return Array.isArray(body) && body[0] && typeof body[0].count === "number" ? body[0].count : NaN;
  }

  // ---------------------------------------------------------------- status

  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    if (!err) {
      box.classList.add("hidden");
      return;
    }
    if (err.status === 401) {
      box.append(
        "The API needs a token: enter it in the box above, or open ",
        el("code", {}, "/ui?token=…"),
        st.token ? " (the stored token was refused)." : "."
      );
    } else {
      box.append("Refresh failed: " + (err.message || String(err)));
    }
    box.classList.remove("hidden");
  }

  function setStatus(ok, text) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (ok ? "ok" : "failed");
  }

  // ---------------------------------------------------------------- rates

  // Keep the samples of the last window (at least two, whatever their age).
  function pushSample(samples, sample, windowMs) {
    samples.push(sample);
    while (samples.length > 2 && sample.t - samples[0].t > windowMs) samples.shift();
    return samples;
  }

  // Per-second rate of `key` from the first to the last sample; null until
  // there are two samples. Never negative: a purge or a stream reset makes
  // counts go down, which is not negative work.
  function rateOf(samples, key) {
    if (samples.length < 2) return null;
    const a = samples[0], b = samples[samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0 || !isFinite(a[key]) || !isFinite(b[key])) return null;
    return Math.max(0, (b[key] - a[key]) / dt);
  }

  // Rate between each pair of successive samples (the sparkline).
  function intervalRates(samples, key) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const r = rateOf([samples[i - 1], samples[i]], key);
      if (r !== null) out.push(r);
    }
    return out;
  }

  function sparkline(svg, pts) {
    svg.replaceChildren();
    if (pts.length < 2) return;
    const max = Math.max(...pts) || 1;
    const step = 120 / (pts.length - 1);
    const coords = pts.map((p, i) => `${(i * step).toFixed(1)},${(22 - (p / max) * 20).toFixed(1)}`);
    svg.append(svgEl("polyline", { points: coords.join(" ") }));
  }

  function renderRates() {
    $("rate-events").textContent = fmtRate(rateOf(st.samples, "events"));
    $("rate-pipeline").textContent = fmtRate(rateOf(st.samples, "done"));
    $("samples").textContent = String(st.samples.length);
    sparkline($("spark-events"), intervalRates(st.samples, "events"));
    sparkline($("spark-pipeline"), intervalRates(st.samples, "done"));
  }

  // ---------------------------------------------------------------- counts

  async function loadCounts() {
    const [events, streams, ...byState] = await Promise.all([
      count("events"),
      count("streams"),
      ...STATES.map((s) => count("streams", { state: s })),
    ]);
    const states = {};
    STATES.forEach((s, i) => (states[s] = byState[i]));
    return { events, streams, states };
  }

  function renderCounts(c) {
    $("total-events").textContent = fmtInt(c.events);
    $("total-streams").textContent = fmtInt(c.streams);
    const box = $("states");
    box.replaceChildren(
      ...STATES.map((s) =>
        clickable(
          el(
            "div",
            {
              class: `state st-${s}${st.stateFilter === s ? " selected" : ""}`,
              title: `show recent ${s} streams`,
              role: "button",
              "data-state": s,
            },
            el("div", { class: "n", "data-testid": `count-${s}` }, fmtInt(c.states[s])),
            el("div", { class: "name" }, s.replace("_", " "))
          ),
          () => toggleStateFilter(s)
        )
      )
    );
  }

  function toggleStateFilter(s) {
    st.stateFilter = st.stateFilter === s ? null : s;
    refresh();
  }

  async function loadTriggerNames() {
    const rows = await api("/streams", { limit: NAME_SCAN });
    const names = new Set(st.triggerNames);
    for (const r of rows) if (typeof r.name === "string") names.add(r.name);
    st.triggerNames = [...names].sort();
  }

  async function loadTriggers() {
    if (st.refreshNo % 6 === 0 || st.triggerNames.length === 0) await loadTriggerNames();
    return Promise.all(
      st.triggerNames.map(async (name) => {
        const [total, ...byState] = await Promise.all([
          count("streams", { trigger_name: name }),
          ...STATES.map((s) => count("streams", { trigger_name: name, state: s })),
        ]);
        const states = {};
        STATES.forEach((s, i) => (states[s] = byState[i]));
        return { name, total, states };
      })
    );
  }

  function renderTriggers(rows) {
    $("trigger-head").replaceChildren(
      el("th", {}, "trigger"),
      el("th", { class: "num" }, "total"),
      ...STATES.map((s) => el("th", { class: "num" }, s.replace("_", " ")))
    );
    const body = $("trigger-body");
    if (rows.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: STATES.length + 2 }, "no streams yet")));
      return;
    }
    body.replaceChildren(
      ...rows.map((r) =>
        el(
          "tr",
          { "data-trigger": r.name },
          el("td", { class: "mono" }, r.name),
          el("td", { class: "num", "data-testid": `trigger-total-${slug(r.name)}` }, fmtInt(r.total)),
          ...STATES.map((s) =>
            el(
              "td",
              { class: "num" + (r.states[s] === 0 ? " zero" : ""), "data-testid": `trigger-${slug(r.name)}-${s}` },
              fmtInt(r.states[s])
            )
          )
        )
      )
    );
  }

  // ---------------------------------------------------------------- lists

  // Compact form for the lists: whole-day range ends lose their 00:00:00.
  function shortValue(v) {
    if (isTyped(v, "timex.TimeRange")) {
      const day = (iso) => (typeof iso === "string" ? iso.replace(/T00:00:00$/, "") : "–");
      return fmtIso(day(v.begin)) + " → " + fmtIso(day(v.end));
    }
    return fmtValue(v);
  }

  function distSummary(dt) {
    return Object.entries(dt || {}).map(([k, v]) => {
      const text = `${k}=${shortValue(v)}`;
      return el("div", { class: "ellipsis", title: text }, text);
    });
  }

  // List tables show whole seconds; details keep the microseconds.
  function fmtSeconds(v) {
    return isTyped(v, "datetime") ? fmtIso(v.datetime.slice(0, 19)) : fmtDt(v);
  }

  function renderStreams(rows) {
    $("stream-filter-label").textContent = st.stateFilter ? `(${st.stateFilter})` : "";
    const body = $("stream-body");
    if (rows.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { class: "muted", colspan: 6 }, "no streams")));
      return;
    }
    body.replaceChildren(...rows.map(streamRow));
  }

  function streamRow(r) {
    const tr = el(
      "tr",
      { class: "row", "data-testid": "stream-row", "data-id": r.id },
      el("td", { class: "nw" }, String(r.id)),
      el("td", { class: "mono nw" }, r.name),
      el("td", { class: "nw" }, el("span", { class: `badge st-${r.state}` }, r.state)),
      el("td", { class: "nw" }, fmtSeconds(r.first_event)),
      el("td", { class: "nw" }, fmtSeconds(r.last_event)),
      el("td", { class: "mono fill" }, distSummary(r.distinguishing_traits))
    );
    return clickable(tr, () => openStream(r.id));
  }

  function traitTable(ev) {
    const names = Object.keys(ev)
      .filter((k) => !RESERVED.has(k))
      .sort();
    return el(
      "table",
      { class: "kv", "data-testid": "traits", "data-message-id": ev.message_id },
      el("tr", {}, el("th", {}, "message_id"), el("td", {}, ev.message_id), el("td", { class: "t" }, "")),
      el("tr", {}, el("th", {}, "event_type"), el("td", {}, ev.event_type), el("td", { class: "t" }, "")),
      el("tr", {}, el("th", {}, "timestamp"), el("td", {}, fmtDt(ev.timestamp)), el("td", { class: "t" }, "")),
      ...names.map((k) =>
        el(
          "tr",
          { "data-testid": "trait", "data-name": k },
          el("th", {}, k),
          el("td", { "data-testid": "trait-value" }, fmtValue(ev[k])),
          el("td", { class: "t" }, typeOf(ev[k]))
        )
      )
    );
  }

  // An expandable event list: a row per event, a traits row under each open one.
  // The traits come from the list item at once and are then re-read from
  // /events/{message_id}.
  // Rows and cards act on click and on Enter/Space when focused.
  function clickable(tr, fn) {
    tr.setAttribute("tabindex", "0");
    tr.addEventListener("click", fn);
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        fn();
      }
    });
    return tr;
  }

  function renderEventRows(body, events, open, testid) {
    const rows = [];
    for (const ev of events.slice(0, MAX_EVENT_ROWS)) {
      const id = ev.message_id;
      const isOpen = open.has(id);
      const tr = el(
        "tr",
        { class: "row" + (isOpen ? " open" : ""), "data-testid": testid, "data-message-id": id },
        el("td", { class: "nw", title: fmtDt(ev.timestamp) }, fmtSeconds(ev.timestamp)),
        el("td", { class: "mono" }, ev.event_type),
        el("td", { class: "mono" }, id)
      );
      clickable(tr, () => {
        if (open.has(id)) open.delete(id);
        else open.add(id);
        renderEventRows(body, events, open, testid);
      });
      rows.push(tr);
      if (isOpen) {
        const cell = el("td", { colspan: 3 }, traitTable(ev));
        rows.push(el("tr", { class: "traits" }, cell));
        api("/events/" + encodeURIComponent(id))
          .then((full) => cell.replaceChildren(traitTable(full)))
          .catch((e) => cell.append(el("div", { class: "error" }, e.message)));
      }
    }
    if (events.length > MAX_EVENT_ROWS) {
      const more = `showing the first ${MAX_EVENT_ROWS} of ${events.length} events (all are on the timeline)`;
      rows.push(el("tr", {}, el("td", { class: "muted", colspan: 3 }, more)));
    }
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { class: "muted", colspan: 3 }, "no events")));
    body.replaceChildren(...rows);
  }

  // ---------------------------------------------------------------- stream detail

  function hashParams() {
    return new URLSearchParams(location.hash.replace(/^#/, ""));
  }

  function openStream(id) {
    const h = hashParams();
    h.set("stream", String(id));
    location.hash = h.toString();
  }

  async function loadStreamDetail() {
    const id = hashParams().get("stream");
    const panel = $("stream-detail");
    if (!id) {
      panel.classList.add("hidden");
      return;
    }
    panel.classList.remove("hidden");
    $("sd-id").textContent = id;
    try {
      const body = await api("/streams/" + encodeURIComponent(id), { details: "true" });
      const s = Array.isArray(body) ? body[0] : body;
      if (!s) throw new Error(`no stream with id ${id}`);
      renderStreamDetail(s);
    } catch (e) {
      $("sd-name").textContent = e.status === 404 ? `no stream with id ${id}` : e.message;
      for (const k of ["sd-state", "sd-first", "sd-last", "sd-fire", "sd-expire", "sd-count"]) $(k).textContent = "–";
      $("sd-dtraits").replaceChildren();
      $("timeline").replaceChildren();
      $("sd-event-body").replaceChildren();
    }
  }

  function renderStreamDetail(s) {
    const events = Array.isArray(s.events) ? s.events : [];
    $("sd-id").textContent = String(s.id);
    $("sd-name").textContent = s.name;
    $("sd-state").replaceChildren(el("span", { class: `badge st-${s.state}` }, s.state));
    $("sd-first").textContent = fmtDt(s.first_event);
    $("sd-last").textContent = fmtDt(s.last_event);
    $("sd-fire").textContent = fmtDt(s.fire_timestamp);
    $("sd-expire").textContent = fmtDt(s.expire_timestamp);
    $("sd-count").textContent = String(events.length);
    const dt = s.distinguishing_traits || {};
    $("sd-dtraits").replaceChildren(
      ...Object.keys(dt)
        .sort()
        .map((k) =>
          el(
            "tr",
            { "data-testid": "dtrait", "data-name": k },
            el("th", {}, k),
            el("td", {}, fmtValue(dt[k])),
            el("td", { class: "t" }, typeOf(dt[k]))
          )
        )
    );
    renderTimeline(s, events);
    renderEventRows($("sd-event-body"), events, st.openStreamEvents, "sd-event-row");
  }

  const PALETTE = ["#2f6fdf", "#2f9257", "#c98a12", "#8b5cf6", "#c2382f", "#14a3b8", "#e0663a", "#5b6b8c"];

  const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
  const TICK_STEPS = [1, 2, 5, 10, 15, 30].map((n) => n * SEC)
    .concat([1, 2, 5, 10, 15, 30].map((n) => n * MIN))
    .concat([1, 2, 3, 6, 12].map((n) => n * HOUR))
    .concat([1, 2, 7, 14, 30].map((n) => n * DAY));

  // Round-valued UTC ticks, about five of them, inside [t0, t1].
  function ticks(t0, t1) {
    const span = t1 - t0;
    const step = TICK_STEPS.find((s) => span / s <= 6) || span / 5;
    const out = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1 && out.length < 50; t += step) out.push(t);
    return { step, list: out };
  }

  function fmtTick(ms, step, multiDay) {
    const iso = new Date(ms).toISOString();
    if (step < SEC) return iso.slice(11, 23);
    if (multiDay) return step < MIN ? iso.slice(5, 19).replace("T", " ") : iso.slice(5, 16).replace("T", " ");
    return step < MIN ? iso.slice(11, 19) : iso.slice(11, 16);
  }

  // Swim lanes, one per event type, events as dots on a UTC time axis; the
  // stream's first..last span on top, fire/expire as dashed lines when they
  // are near enough to the events to share the axis.
  function renderTimeline(s, events) {
    const svg = $("timeline");
    svg.replaceChildren();
    const W = 1000, L = 250, R = 24, TOP = 34, LANE = 24, BOTTOM = 8;
    const lanes = [];
    for (const ev of events) if (!lanes.includes(ev.event_type)) lanes.push(ev.event_type);
    const times = events.map((e) => dtMillis(e.timestamp)).filter(isFinite);
    for (const k of ["first_event", "last_event"]) {
      const t = dtMillis(s[k]);
      if (isFinite(t)) times.push(t);
    }
    let H = TOP + Math.max(1, lanes.length + 1) * LANE + BOTTOM;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    if (times.length === 0) {
      svg.append(svgEl("text", { x: 10, y: 20, class: "axis" }, "no event times to plot"));
      return;
    }
    let t0 = Math.min(...times), t1 = Math.max(...times);
    const notes = [];
    const marks = [];
    for (const [k, cls] of [["fire_timestamp", "fire"], ["expire_timestamp", "expire"]]) {
      const t = dtMillis(s[k]);
      if (!isFinite(t)) continue;
      const span = Math.max(t1 - t0, 60000);
      if (t >= t0 - span / 2 && t <= t1 + span / 2) marks.push([t, cls]);
      else notes.push(`${cls} ${fmtIso(s[k].datetime)} (off the axis)`);
    }
    for (const [t] of marks) {
      t0 = Math.min(t0, t);
      t1 = Math.max(t1, t);
    }
    if (t1 - t0 < 1000) {
      t0 -= 30000;
      t1 += 30000;
    }
    const pad = (t1 - t0) * 0.03;
    t0 -= pad;
    t1 += pad;
    if (notes.length) {
      H += LANE;
      svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    }
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const laneY = (i) => TOP + (i + 1) * LANE + LANE / 2;

    // axis
    const axisBottom = H - BOTTOM - (notes.length ? LANE : 0);
    const multiDay = new Date(t0).toISOString().slice(0, 10) !== new Date(t1).toISOString().slice(0, 10);
    const tk = ticks(t0, t1);
    for (const t of tk.list) {
      svg.append(svgEl("line", { x1: x(t), x2: x(t), y1: TOP - 4, y2: axisBottom, class: "lane" }));
      svg.append(svgEl("text", { x: x(t), y: TOP - 10, "text-anchor": "middle", class: "axis" }, fmtTick(t, tk.step, multiDay)));
    }
    svg.append(svgEl("text", { x: 8, y: TOP - 10, class: "axis" }, "UTC " + new Date(t0).toISOString().slice(0, 10)));
    // stream span
    const f = dtMillis(s.first_event), l = dtMillis(s.last_event);
    svg.append(svgEl("text", { x: 8, y: laneY(-1) + 4 }, `stream ${s.id} (${s.state})`));
    if (isFinite(f) && isFinite(l)) {
      svg.append(svgEl("line", { x1: x(f), x2: Math.max(x(l), x(f) + 1), y1: laneY(-1), y2: laneY(-1), class: "span" }));
    }
    for (const [t, cls] of marks) {
      svg.append(svgEl("line", { x1: x(t), x2: x(t), y1: TOP, y2: axisBottom, class: `mark ${cls}` }));
      svg.append(svgEl("text", { x: x(t) + 3, y: laneY(-1) - 6, class: "axis" }, cls));
    }
    // lanes and dots
    lanes.forEach((name, i) => {
      const y = laneY(i);
      svg.append(svgEl("line", { x1: L, x2: W - R, y1: y, y2: y, class: "lane" }));
      const label = name.length > 40 ? "…" + name.slice(-39) : name;
      svg.append(svgEl("text", { x: 8, y: y + 4 }, label));
    });
    for (const ev of events) {
      const t = dtMillis(ev.timestamp);
      if (!isFinite(t)) continue;
      const i = lanes.indexOf(ev.event_type);
      const dot = svgEl("circle", {
        cx: x(t).toFixed(1),
        cy: laneY(i),
        r: 6,
        fill: PALETTE[i % PALETTE.length],
        "data-testid": "timeline-dot",
        "data-message-id": ev.message_id,
      });
      dot.append(svgEl("title", {}, `${ev.event_type}\n${fmtDt(ev.timestamp)}\n${ev.message_id}`));
      dot.addEventListener("click", () => {
        st.openStreamEvents.add(ev.message_id);
        renderEventRows($("sd-event-body"), events, st.openStreamEvents, "sd-event-row");
      });
      svg.append(dot);
    }
    if (notes.length) svg.append(svgEl("text", { x: 8, y: H - BOTTOM - 6, class: "axis" }, notes.join("; ")));
  }

  // ---------------------------------------------------------------- refresh loop

  async function refresh() {
    if (st.busy) {
      st.again = true;
      return;
    }
    st.busy = true;
    st.again = false;
    clearTimeout(st.timer);
    const began = Date.now();
    let firstError = null;
    const note = (e) => {
      if (!firstError) firstError = e;
    };
    try {
      if (!st.version) st.version = await discover();
      $("api-base").textContent = (base || "") + "/" + st.version;
      const t = Date.now();
      const jobs = [
        loadCounts().then((c) => {
          renderCounts(c);
          const done = DONE_STATES.reduce((a, s) => a + c.states[s], 0);
          pushSample(st.samples, { t, events: c.events, done }, RATE_WINDOW_MS);
          renderRates();
        }, note),
        loadTriggers().then(renderTriggers, note),
        api("/streams", { limit: RECENT_STREAMS, state: st.stateFilter }).then(renderStreams, note),
        api("/events", { limit: RECENT_EVENTS }).then(
          (evs) => renderEventRows($("event-body"), evs, st.openEvents, "event-row"),
          note
        ),
        loadStreamDetail().catch(note),
      ];
      await Promise.all(jobs);
    } catch (e) {
      note(e);
    }
    st.refreshNo += 1;
    showError(firstError);
    if (firstError) setStatus(false, firstError.status === 401 ? "unauthorized" : "error");
    else setStatus(true, "ok");
    $("refreshed").textContent = new Date().toISOString().slice(11, 19) + " UTC";
    st.lastDuration = Date.now() - began;
    st.busy = false;
    if (st.again) refresh();
    else schedule();
  }

  // Counting a big event table is not free: when a refresh takes long, wait
  // at least four times as long before the next one.
  function nextDelay(intervalMs, lastDurationMs) {
    return Math.max(intervalMs, 4 * lastDurationMs);
  }

  function schedule() {
    clearTimeout(st.timer);
    const delay = nextDelay(refreshSeconds * 1000, st.lastDuration);
    $("interval").textContent = String(Math.round(delay / 100) / 10);
    if ($("auto").checked) st.timer = setTimeout(refresh, delay);
  }

  // ---------------------------------------------------------------- start

  function loadToken() {
    let t = query.get("token");
    try {
      if (t !== null) localStorage.setItem(TOKEN_KEY, t);
      else t = localStorage.getItem(TOKEN_KEY);
    } catch (_) {
      /* storage disabled: keep it for this page only */
    }
    if (query.has("token")) {
      // Do not leave the token in the address bar or the history.
      query.delete("token");
      const rest = query.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
    return t || "";
  }

  function start() {
    st.token = loadToken();
    for (const [id, open] of [["event", st.openEvents], ["open", st.openStreamEvents]]) {
      const v = hashParams().get(id);
      if (v) open.add(v);
    }
    $("interval").textContent = String(refreshSeconds);
    $("token").value = st.token;
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      st.token = $("token").value.trim();
      try {
        if (st.token) localStorage.setItem(TOKEN_KEY, st.token);
        else localStorage.removeItem(TOKEN_KEY);
      } catch (_) {
        /* ignore */
      }
      st.version = null;
      refresh();
    });
    $("auto").addEventListener("change", schedule);
    $("refresh-now").addEventListener("click", refresh);
    $("sd-close").addEventListener("click", () => {
      const h = hashParams();
      h.delete("stream");
      location.hash = h.toString();
    });
    window.addEventListener("hashchange", () =>
      loadStreamDetail().then(() => {
        if (hashParams().get("stream")) $("stream-detail").scrollIntoView({ block: "start" });
      })
    );
    refresh();
  }

  // The pure helpers, for the browser test harness (tests/ui.rs), which sets
  // window.stv3UiTest before loading this file; the dashboard does not start then.
  if (window.stv3UiTest) {
    window.stv3UiTest.exports = {
      isoMillis, fmtValue, shortValue, typeOf, fmtRate, fmtInt, slug,
      pushSample, rateOf, intervalRates, ticks, fmtTick, nextDelay,
    };
    return;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

//! The simulation: instances live on compute hosts and go through nova
//! operations (create, resize, rebuild, power off/on, reboot, snapshot,
//! delete, failed creates); each operation becomes the notifications nova
//! would send, and at every midnight every instance alive at that moment
//! gets its end-of-day `compute.instance.exists`.
//!
//! Everything comes from one seeded RNG and is produced in timestamp order
//! (a heap of pending notifications and operation starts), so the same
//! [`GenConfig`] always yields the same stream.
//!
//! Invariants the tests check: an instance's first notification is its
//! create; nothing follows `compute.instance.delete.end`; EOD exists have
//! `audit_period_beginning` = previous midnight and `audit_period_ending` =
//! midnight; non-EOD exists (resize, rebuild, delete) start at midnight and
//! end at the operation's time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::catalog::{compute_host, scheduler_host, Flavor, Image, FLAVORS, IMAGES};

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Instance slots (a deleted instance's slot is reused by a new instance later).
    pub instances: usize,
    /// Simulated start time (UTC).
    pub start: NaiveDateTime,
    /// Operations started per hour, over all instances.
    pub ops_per_hour: f64,
    /// Probability that a create fails (`compute.instance.create.error`).
    pub error_rate: f64,
    /// Number of compute hosts.
    pub hosts: usize,
    /// Wrap each notification in the oslo.messaging v2 envelope.
    pub oslo_v2: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            instances: 50,
            start: NaiveDate::from_ymd_opt(2015, 3, 1)
                .expect("date")
                .and_hms_opt(18, 0, 0)
                .expect("time"),
            ops_per_hour: 60.0,
            error_rate: 0.05,
            hosts: 8,
            oslo_v2: false,
        }
    }
}

impl GenConfig {
    pub fn new(seed: u64, instances: usize) -> Self {
        GenConfig {
            seed,
            instances,
            ..Default::default()
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, the notification timestamp format.
pub fn format_ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn format_ts_t(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn format_secs(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn midnight_after(t: NaiveDateTime) -> NaiveDateTime {
    (t.date() + Duration::days(1)).and_time(NaiveTime::MIN)
}

fn midnight_of(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_time(NaiveTime::MIN)
}

fn secs(s: f64) -> Duration {
    Duration::microseconds((s * 1e6).round() as i64)
}

/// EOD exists are sent within this many seconds after midnight; operations
/// never start inside that window (so an instance alive at midnight is
/// still alive when its exists goes out).
const EOD_WINDOW_SECS: f64 = 120.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Building,
    Active,
    Stopped,
    Error,
    Deleted,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Building => "building",
            State::Active => "active",
            State::Stopped => "stopped",
            State::Error => "error",
            State::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone)]
struct Tenant {
    id: String,
    user_id: String,
    user_name: String,
}

#[derive(Debug, Clone)]
struct Instance {
    uuid: String,
    tenant: usize,
    display_name: String,
    hostname: String,
    host: usize,
    flavor: usize,
    image: usize,
    reservation_id: String,
    ip_v4: String,
    mac: String,
    created_at: NaiveDateTime,
    launched_at: Option<NaiveDateTime>,
    deleted_at: Option<NaiveDateTime>,
    state: State,
    task: Option<&'static str>,
    /// When create.end went out (alive for EOD exists from then on).
    alive_from: Option<NaiveDateTime>,
    /// A delete has started.
    deleting: bool,
    bw_in: i64,
    bw_out: i64,
}

#[derive(Debug)]
enum Item {
    Notification(Box<Value>),
    OpStart(usize),
    Midnight,
}

struct Entry {
    at: NaiveDateTime,
    seq: u64,
    item: Item,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // BinaryHeap is a max-heap: invert so the earliest (then first queued) pops first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// Context of one request (one operation): the `_context_*` fields.
struct Ctx {
    request_id: String,
    auth_token: String,
    timestamp: NaiveDateTime,
    tenant: Option<usize>,
    remote_address: String,
    is_admin: bool,
}

/// The notification stream. An endless iterator in timestamp order; use
/// `.take(n)`.
pub struct Generator {
    cfg: GenConfig,
    rng: StdRng,
    heap: BinaryHeap<Entry>,
    seq: u64,
    tenants: Vec<Tenant>,
    /// Slot -> current instance (None between a delete and the next create).
    slots: Vec<Option<Instance>>,
    /// Instances ever created (serial numbers for names).
    created: u64,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Generator {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let n_tenants = cfg.instances.div_ceil(2).max(1);
        let tenants = (0..n_tenants)
            .map(|_| {
                let id = rng.gen_range(100_000..1_000_000).to_string();
                Tenant {
                    user_id: hex32(&mut rng),
                    user_name: format!("user{}", rng.gen_range(1000..10_000)),
                    id,
                }
            })
            .collect();
        let mut g = Generator {
            rng,
            heap: BinaryHeap::new(),
            seq: 0,
            tenants,
            slots: vec![None; cfg.instances],
            created: 0,
            cfg,
        };
        let first_midnight = midnight_after(g.cfg.start);
        g.push(first_midnight, Item::Midnight);
        for slot in 0..g.cfg.instances {
            let delay = g.rng.gen_range(0.0..g.mean_gap_secs().min(4.0 * 3600.0));
            let at = g.op_time(g.cfg.start + secs(delay));
            g.push(at, Item::OpStart(slot));
        }
        g
    }

    pub fn config(&self) -> &GenConfig {
        &self.cfg
    }

    fn mean_gap_secs(&self) -> f64 {
        3600.0 * self.cfg.instances.max(1) as f64 / self.cfg.ops_per_hour.max(1e-6)
    }

    /// Move a start time out of the EOD window after midnight.
    fn op_time(&self, t: NaiveDateTime) -> NaiveDateTime {
        let m = midnight_of(t);
        if t < m + secs(EOD_WINDOW_SECS + 30.0) {
            m + secs(EOD_WINDOW_SECS + 30.0)
        } else {
            t
        }
    }

    fn push(&mut self, at: NaiveDateTime, item: Item) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            item,
        });
    }

    fn schedule_next_op(&mut self, slot: usize, after: NaiveDateTime) {
        let mean = self.mean_gap_secs();
        let gap = exp_sample(&mut self.rng, mean).max(60.0);
        let at = self.op_time(after + secs(gap));
        self.push(at, Item::OpStart(slot));
    }

    fn uuid4(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.gen())
            .into_uuid()
            .to_string()
    }

    fn new_ctx(&mut self, at: NaiveDateTime, tenant: Option<usize>) -> Ctx {
        let request_id = format!("req-{}", self.uuid4());
        let auth_token = hex32(&mut self.rng);
        let remote_address = random_ip(&mut self.rng);
        Ctx {
            request_id,
            auth_token,
            timestamp: at,
            tenant,
            remote_address,
            is_admin: tenant.is_none(),
        }
    }

    // ------------------------------------------------------------ rendering

    fn envelope(
        &mut self,
        ctx: &Ctx,
        at: NaiveDateTime,
        event_type: &str,
        priority: &str,
        publisher: String,
        payload: Value,
    ) {
        let mut m = Map::new();
        let tenant = ctx.tenant.map(|t| self.tenants[t].clone());
        m.insert("_context_auth_token".into(), json!(ctx.auth_token));
        m.insert("_context_glance_api_servers".into(), Value::Null);
        m.insert("_context_instance_lock_checked".into(), json!(false));
        m.insert("_context_is_admin".into(), json!(ctx.is_admin));
        m.insert(
            "_context_project_id".into(),
            json!(tenant.as_ref().map(|t| t.id.clone())),
        );
        m.insert(
            "_context_project_name".into(),
            json!(tenant.as_ref().map(|t| t.id.clone())),
        );
        m.insert("_context_quota_class".into(), Value::Null);
        m.insert("_context_read_deleted".into(), json!("no"));
        m.insert("_context_remote_address".into(), json!(ctx.remote_address));
        m.insert("_context_request_id".into(), json!(ctx.request_id));
        let roles = if ctx.is_admin {
            json!(["admin"])
        } else {
            json!(["_member_", "compute:default", "object-store:default"])
        };
        m.insert("_context_roles".into(), roles);
        m.insert(
            "_context_tenant".into(),
            json!(tenant.as_ref().map(|t| t.id.clone())),
        );
        m.insert(
            "_context_timestamp".into(),
            json!(format_ts_t(ctx.timestamp)),
        );
        m.insert(
            "_context_user".into(),
            json!(tenant.as_ref().map(|t| t.user_id.clone())),
        );
        m.insert(
            "_context_user_id".into(),
            json!(tenant.as_ref().map(|t| t.user_id.clone())),
        );
        m.insert(
            "_context_user_name".into(),
            json!(tenant.as_ref().map(|t| t.user_name.clone())),
        );
        m.insert("_unique_id".into(), json!(hex32(&mut self.rng)));
        m.insert("event_type".into(), json!(event_type));
        m.insert("message_id".into(), json!(self.uuid4()));
        m.insert("payload".into(), payload);
        m.insert("priority".into(), json!(priority));
        m.insert("publisher_id".into(), json!(publisher));
        m.insert("timestamp".into(), json!(format_ts(at)));
        let mut body = Value::Object(m);
        if self.cfg.oslo_v2 {
            body = json!({"oslo.message": body.to_string(), "oslo.version": "2.0"});
        }
        self.push(at, Item::Notification(Box::new(body)));
    }

    fn instance_payload(&self, inst: &Instance) -> Map<String, Value> {
        let flavor: &Flavor = &FLAVORS[inst.flavor];
        let image: &Image = &IMAGES[inst.image];
        let tenant = &self.tenants[inst.tenant];
        let host = compute_host(inst.host);
        let opt_ts = |t: Option<NaiveDateTime>| t.map(format_ts).unwrap_or_default();
        let mut p = Map::new();
        p.insert("access_ip_v4".into(), json!(inst.ip_v4));
        p.insert("access_ip_v6".into(), Value::Null);
        p.insert("architecture".into(), json!(image.architecture));
        p.insert("availability_zone".into(), json!("nova"));
        p.insert("cell_name".into(), json!(""));
        p.insert("created_at".into(), json!(format_secs(inst.created_at)));
        p.insert("deleted_at".into(), json!(opt_ts(inst.deleted_at)));
        p.insert(
            "disk_gb".into(),
            json!(flavor.root_gb + flavor.ephemeral_gb),
        );
        p.insert("display_name".into(), json!(inst.display_name));
        p.insert("ephemeral_gb".into(), json!(flavor.ephemeral_gb));
        p.insert(
            "fixed_ips".into(),
            json!([{"address": inst.ip_v4, "floating_ips": [], "label": "private", "meta": {},
                    "type": "fixed", "version": 4, "vif_mac": inst.mac}]),
        );
        p.insert("host".into(), json!(host));
        p.insert("hostname".into(), json!(inst.hostname));
        p.insert(
            "image_meta".into(),
            json!({
                "base_image_ref": image.id,
                "container_format": "bare",
                "disk_format": "qcow2",
                "instance_type_flavorid": flavor.flavorid,
                "instance_type_id": flavor.id.to_string(),
                "instance_type_name": flavor.name,
                "min_disk": image.min_disk.to_string(),
                "min_ram": image.min_ram.to_string(),
                "org.openstack__1__architecture": image.architecture,
                "org.openstack__1__os_distro": image.os_distro,
                "org.openstack__1__os_version": image.os_version,
                "os_type": image.os_type,
            }),
        );
        p.insert("image_name".into(), json!(image.name));
        p.insert(
            "image_ref_url".into(),
            json!(format!(
                "http://glance.example.net:9292/images/{}",
                image.id
            )),
        );
        p.insert("instance_flavor_id".into(), json!(flavor.flavorid));
        p.insert("instance_id".into(), json!(inst.uuid));
        p.insert("instance_type".into(), json!(flavor.name));
        p.insert("instance_type_id".into(), json!(flavor.id));
        p.insert("kernel_id".into(), json!(""));
        p.insert("launched_at".into(), json!(opt_ts(inst.launched_at)));
        p.insert("memory_mb".into(), json!(flavor.memory_mb));
        p.insert("metadata".into(), json!({}));
        p.insert("node".into(), json!(format!("{host}.example.net")));
        p.insert("os_type".into(), json!(image.os_type));
        p.insert("progress".into(), json!(""));
        p.insert("ramdisk_id".into(), json!(""));
        p.insert("reservation_id".into(), json!(inst.reservation_id));
        p.insert("root_gb".into(), json!(flavor.root_gb));
        p.insert("state".into(), json!(inst.state.name()));
        p.insert("state_description".into(), json!(inst.task.unwrap_or("")));
        p.insert("tenant_id".into(), json!(tenant.id));
        p.insert("terminated_at".into(), json!(opt_ts(inst.deleted_at)));
        p.insert("user_id".into(), json!(tenant.user_id));
        p.insert("vcpus".into(), json!(flavor.vcpus));
        p
    }

    /// A plain instance notification from the compute host.
    fn emit(&mut self, ctx: &Ctx, at: NaiveDateTime, event_type: &str, inst: &Instance) {
        let payload = Value::Object(self.instance_payload(inst));
        let publisher = format!("compute.{}", compute_host(inst.host));
        self.envelope(ctx, at, event_type, "INFO", publisher, payload);
    }

    /// `compute.instance.update` for a state/task transition.
    fn emit_update(
        &mut self,
        ctx: &Ctx,
        at: NaiveDateTime,
        inst: &Instance,
        old_state: State,
        old_task: Option<&str>,
    ) {
        let mut p = self.instance_payload(inst);
        p.insert("old_state".into(), json!(old_state.name()));
        p.insert("old_task_state".into(), json!(old_task));
        p.insert("new_task_state".into(), json!(inst.task));
        p.insert(
            "audit_period_beginning".into(),
            json!(format_ts(midnight_of(at))),
        );
        p.insert("audit_period_ending".into(), json!(format_ts(at)));
        p.insert("bandwidth".into(), json!({}));
        let publisher = format!("compute.{}", compute_host(inst.host));
        self.envelope(
            ctx,
            at,
            "compute.instance.update",
            "INFO",
            publisher,
            Value::Object(p),
        );
    }

    fn emit_exists(
        &mut self,
        ctx: &Ctx,
        at: NaiveDateTime,
        inst: &Instance,
        begin: NaiveDateTime,
        end: NaiveDateTime,
    ) {
        let mut p = self.instance_payload(inst);
        p.insert("audit_period_beginning".into(), json!(format_ts(begin)));
        p.insert("audit_period_ending".into(), json!(format_ts(end)));
        p.insert(
            "bandwidth".into(),
            json!({"public": {"bw_in": inst.bw_in, "bw_out": inst.bw_out}}),
        );
        let publisher = format!("compute.{}", compute_host(inst.host));
        self.envelope(
            ctx,
            at,
            "compute.instance.exists",
            "INFO",
            publisher,
            Value::Object(p),
        );
    }

    /// Transition to (state, task) and announce it with an update.
    fn transition(
        &mut self,
        ctx: &Ctx,
        at: NaiveDateTime,
        inst: &mut Instance,
        state: State,
        task: Option<&'static str>,
    ) {
        let (old_state, old_task) = (inst.state, inst.task);
        inst.state = state;
        inst.task = task;
        self.emit_update(ctx, at, inst, old_state, old_task);
    }

    fn step(&mut self, t: &mut NaiveDateTime, lo: f64, hi: f64) -> NaiveDateTime {
        *t += secs(self.rng.gen_range(lo..hi));
        *t
    }

    // ------------------------------------------------------------ operations

    fn op_create(&mut self, slot: usize, at: NaiveDateTime) {
        self.created += 1;
        let n = self.created;
        let tenant = slot % self.tenants.len();
        let inst = Instance {
            uuid: self.uuid4(),
            tenant,
            display_name: format!("instance-{n:05}"),
            hostname: format!("server-{n:05}"),
            host: self.rng.gen_range(0..self.cfg.hosts.max(1)),
            flavor: self.rng.gen_range(0..FLAVORS.len()),
            image: self.rng.gen_range(0..IMAGES.len()),
            reservation_id: format!("r-{}", &hex32(&mut self.rng)[..8]),
            ip_v4: format!(
                "10.{}.{}.{}",
                self.rng.gen_range(0..256),
                self.rng.gen_range(0..256),
                self.rng.gen_range(2..255)
            ),
            mac: format!(
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                self.rng.gen::<u8>(),
                self.rng.gen::<u8>(),
                self.rng.gen::<u8>()
            ),
            created_at: at,
            launched_at: None,
            deleted_at: None,
            state: State::Building,
            task: Some("scheduling"),
            alive_from: None,
            deleting: false,
            bw_in: 0,
            bw_out: 0,
        };
        let mut inst = inst;
        let ctx = self.new_ctx(at, Some(tenant));
        let sched = format!("scheduler.{}", scheduler_host(self.rng.gen_range(0..2)));
        let mut t = at;
        let req = json!({"request_spec": {"instance_properties": {"uuid": inst.uuid, "project_id": self.tenants[tenant].id},
                         "instance_uuids": [inst.uuid], "num_instances": 1}});
        self.envelope(
            &ctx,
            t,
            "scheduler.run_instance.start",
            "INFO",
            sched.clone(),
            req.clone(),
        );
        let t1 = self.step(&mut t, 0.05, 0.4);
        self.emit_update(&ctx, t1, &inst, State::Building, None);
        let t2 = self.step(&mut t, 0.1, 1.0);
        let sched_payload = json!({"instance_id": inst.uuid, "request_spec": req["request_spec"], "weighted_host": {"host": compute_host(inst.host), "weight": 1.0}});
        self.envelope(
            &ctx,
            t2,
            "scheduler.run_instance.scheduled",
            "INFO",
            sched.clone(),
            sched_payload,
        );
        let t3 = self.step(&mut t, 0.01, 0.2);
        self.envelope(&ctx, t3, "scheduler.run_instance.end", "INFO", sched, req);
        let t4 = self.step(&mut t, 0.5, 3.0);
        self.transition(&ctx, t4, &mut inst, State::Building, None);
        let t5 = self.step(&mut t, 0.05, 0.5);
        self.emit(&ctx, t5, "compute.instance.create.start", &inst);
        for task in ["networking", "block_device_mapping", "spawning"] {
            let tt = self.step(&mut t, 0.5, 8.0);
            self.transition(&ctx, tt, &mut inst, State::Building, Some(task));
        }
        let fails = self.rng.gen_bool(self.cfg.error_rate.clamp(0.0, 1.0));
        let t6 = self.step(&mut t, 10.0, 90.0);
        if fails {
            inst.state = State::Error;
            inst.task = None;
            let mut p = self.instance_payload(&inst);
            p.insert(
                "message".into(),
                json!("No valid host was found. Exceeded max scheduling attempts 3"),
            );
            p.insert("code".into(), json!(500));
            p.insert(
                "exception".into(),
                json!({"kwargs": {"uuid": inst.uuid, "code": 500}, "class": "NoValidHost"}),
            );
            let publisher = format!("compute.{}", compute_host(inst.host));
            self.envelope(
                &ctx,
                t6,
                "compute.instance.create.error",
                "ERROR",
                publisher,
                Value::Object(p),
            );
            let t7 = self.step(&mut t, 0.05, 0.5);
            self.emit_update(&ctx, t7, &inst, State::Building, Some("spawning"));
            // The owner deletes the broken instance a little later.
            let wait = self.rng.gen_range(120.0..1800.0);
            let later = self.op_time(t + secs(wait));
            self.slots[slot] = Some(inst);
            self.push(later, Item::OpStart(slot));
            return;
        }
        inst.launched_at = Some(t6);
        inst.state = State::Active;
        inst.task = None;
        self.emit(&ctx, t6, "compute.instance.create.end", &inst);
        inst.alive_from = Some(t6);
        let t7 = self.step(&mut t, 0.05, 0.5);
        self.emit_update(&ctx, t7, &inst, State::Building, Some("spawning"));
        self.slots[slot] = Some(inst);
        self.schedule_next_op(slot, t);
    }

    fn run_op(&mut self, slot: usize, at: NaiveDateTime) {
        let Some(mut inst) = self.slots[slot].take() else {
            self.op_create(slot, at);
            return;
        };
        let ctx = self.new_ctx(at, Some(inst.tenant));
        let mut t = at;
        // grow the bandwidth counters a little with every operation
        inst.bw_in += self.rng.gen_range(0..5_000_000);
        inst.bw_out += self.rng.gen_range(0..2_000_000);
        let op = match inst.state {
            State::Error => "delete",
            State::Stopped => {
                if self.rng.gen_bool(0.7) {
                    "power_on"
                } else {
                    "delete"
                }
            }
            _ => {
                let r = self.rng.gen_range(0..100);
                match r {
                    0..=25 => "reboot",
                    26..=45 => "snapshot",
                    46..=61 => "resize",
                    62..=75 => "rebuild",
                    76..=91 => "power_off",
                    _ => "delete",
                }
            }
        };
        match op {
            "reboot" => {
                self.emit(&ctx, t, "compute.instance.reboot.start", &inst);
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.transition(&ctx, t1, &mut inst, State::Active, Some("rebooting"));
                let t2 = self.step(&mut t, 5.0, 60.0);
                self.transition(&ctx, t2, &mut inst, State::Active, None);
                let t3 = self.step(&mut t, 0.05, 0.5);
                self.emit(&ctx, t3, "compute.instance.reboot.end", &inst);
            }
            "snapshot" => {
                self.transition(&ctx, t, &mut inst, State::Active, Some("image_snapshot"));
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.emit(&ctx, t1, "compute.instance.snapshot.start", &inst);
                let t2 = self.step(&mut t, 1.0, 5.0);
                self.transition(
                    &ctx,
                    t2,
                    &mut inst,
                    State::Active,
                    Some("image_pending_upload"),
                );
                let t3 = self.step(&mut t, 1.0, 5.0);
                self.transition(&ctx, t3, &mut inst, State::Active, Some("image_uploading"));
                let t4 = self.step(&mut t, 30.0, 600.0);
                inst.task = None;
                self.emit(&ctx, t4, "compute.instance.snapshot.end", &inst);
                let t5 = self.step(&mut t, 0.05, 0.5);
                self.emit_update(&ctx, t5, &inst, State::Active, Some("image_uploading"));
            }
            "resize" => {
                self.transition(&ctx, t, &mut inst, State::Active, Some("resize_prep"));
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.emit(&ctx, t1, "compute.instance.resize.prep.start", &inst);
                let t2 = self.step(&mut t, 0.1, 2.0);
                self.emit(&ctx, t2, "compute.instance.resize.prep.end", &inst);
                let t3 = self.step(&mut t, 0.5, 3.0);
                self.emit_exists(&ctx, t3, &inst, midnight_of(t3), t3);
                let t4 = self.step(&mut t, 0.05, 0.5);
                self.emit(&ctx, t4, "compute.instance.resize.start", &inst);
                let t5 = self.step(&mut t, 0.5, 3.0);
                self.transition(&ctx, t5, &mut inst, State::Active, Some("resize_migrating"));
                let t6 = self.step(&mut t, 20.0, 200.0);
                self.emit(&ctx, t6, "compute.instance.resize.end", &inst);
                let new_flavor =
                    (inst.flavor + self.rng.gen_range(1..FLAVORS.len())) % FLAVORS.len();
                inst.flavor = new_flavor;
                if self.rng.gen_bool(0.5) {
                    inst.host = self.rng.gen_range(0..self.cfg.hosts.max(1));
                }
                let t7 = self.step(&mut t, 0.5, 3.0);
                self.transition(&ctx, t7, &mut inst, State::Active, Some("resize_finish"));
                let t8 = self.step(&mut t, 0.05, 0.5);
                self.emit(&ctx, t8, "compute.instance.finish_resize.start", &inst);
                let t9 = self.step(&mut t, 5.0, 40.0);
                inst.task = None;
                self.emit(&ctx, t9, "compute.instance.finish_resize.end", &inst);
                // the owner confirms a few minutes later (same operation)
                let confirm_at = self.step(&mut t, 60.0, 900.0);
                let cctx = self.new_ctx(confirm_at, Some(inst.tenant));
                self.emit(
                    &cctx,
                    confirm_at,
                    "compute.instance.resize.confirm.start",
                    &inst,
                );
                let t10 = self.step(&mut t, 0.5, 5.0);
                self.emit(&cctx, t10, "compute.instance.resize.confirm.end", &inst);
            }
            "rebuild" => {
                self.transition(&ctx, t, &mut inst, State::Active, Some("rebuilding"));
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.emit_exists(&ctx, t1, &inst, midnight_of(t1), t1);
                let t2 = self.step(&mut t, 0.05, 0.5);
                self.emit(&ctx, t2, "compute.instance.rebuild.start", &inst);
                inst.image = self.rng.gen_range(0..IMAGES.len());
                let t3 = self.step(&mut t, 1.0, 10.0);
                self.transition(&ctx, t3, &mut inst, State::Active, Some("rebuild_spawning"));
                let t4 = self.step(&mut t, 10.0, 120.0);
                inst.launched_at = Some(t4);
                inst.task = None;
                self.emit(&ctx, t4, "compute.instance.rebuild.end", &inst);
            }
            "power_off" => {
                self.transition(&ctx, t, &mut inst, State::Active, Some("powering-off"));
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.emit(&ctx, t1, "compute.instance.power_off.start", &inst);
                let t2 = self.step(&mut t, 2.0, 30.0);
                inst.state = State::Stopped;
                inst.task = None;
                self.emit(&ctx, t2, "compute.instance.power_off.end", &inst);
            }
            "power_on" => {
                self.transition(&ctx, t, &mut inst, State::Stopped, Some("powering-on"));
                let t1 = self.step(&mut t, 0.1, 1.0);
                self.emit(&ctx, t1, "compute.instance.power_on.start", &inst);
                let t2 = self.step(&mut t, 2.0, 30.0);
                inst.state = State::Active;
                inst.task = None;
                self.emit(&ctx, t2, "compute.instance.power_on.end", &inst);
            }
            _ => {
                // delete
                inst.deleting = true;
                let old = inst.state;
                self.transition(&ctx, t, &mut inst, old, Some("deleting"));
                if inst.launched_at.is_some() {
                    let t1 = self.step(&mut t, 0.05, 0.5);
                    self.emit_exists(&ctx, t1, &inst, midnight_of(t1), t1);
                }
                let t2 = self.step(&mut t, 0.05, 0.5);
                self.emit(&ctx, t2, "compute.instance.delete.start", &inst);
                let t3 = self.step(&mut t, 0.1, 1.0);
                self.emit(&ctx, t3, "compute.instance.shutdown.start", &inst);
                let t4 = self.step(&mut t, 1.0, 15.0);
                self.emit(&ctx, t4, "compute.instance.shutdown.end", &inst);
                let t5 = self.step(&mut t, 0.5, 5.0);
                inst.state = State::Deleted;
                inst.task = None;
                inst.deleted_at = Some(t5);
                self.emit(&ctx, t5, "compute.instance.delete.end", &inst);
                // the slot gets a brand new instance later
                self.schedule_next_op(slot, t);
                return;
            }
        }
        self.slots[slot] = Some(inst);
        self.schedule_next_op(slot, t);
    }

    /// The end-of-day audit: one exists per instance alive at midnight.
    fn run_midnight(&mut self, midnight: NaiveDateTime) {
        let begin = midnight - Duration::days(1);
        let ctx = self.new_ctx(midnight, None);
        let alive: Vec<Instance> = self
            .slots
            .iter()
            .flatten()
            .filter(|i| {
                !i.deleting
                    && i.alive_from.is_some_and(|a| a < midnight)
                    && i.state != State::Deleted
            })
            .cloned()
            .collect();
        for inst in alive {
            let at = midnight + secs(self.rng.gen_range(1.0..EOD_WINDOW_SECS));
            self.emit_exists(&ctx, at, &inst, begin, midnight);
        }
        self.push(midnight + Duration::days(1), Item::Midnight);
    }
}

impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            let entry = self.heap.pop()?;
            match entry.item {
                Item::Notification(v) => return Some(*v),
                Item::OpStart(slot) => self.run_op(slot, entry.at),
                Item::Midnight => self.run_midnight(entry.at),
            }
        }
    }
}

fn hex32<R: Rng>(rng: &mut R) -> String {
    let v: u128 = rng.gen();
    format!("{v:032x}")
}

fn random_ip<R: Rng>(rng: &mut R) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.gen_range(11..224),
        rng.gen_range(0..256),
        rng.gen_range(0..256),
        rng.gen_range(1..255)
    )
}

/// Exponentially distributed sample with the given mean.
fn exp_sample<R: Rng>(rng: &mut R, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    -u.ln() * mean
}

//! `notigen`: write a deterministic stream of nova notifications as JSON
//! lines. Output goes through [`Output`] so further sinks (AMQP publishing
//! with a rate) can be added as variants.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use clap::Parser;
use serde_json::Value;
use stv3_notigen::{GenConfig, Generator};

/// Generate realistic, internally consistent nova notifications.
///
/// Same arguments, same output (byte for byte). Each line is one
/// notification envelope (event_type, message_id, timestamp, publisher_id
/// "compute.<host>", _context_* fields, payload).
#[derive(Parser, Debug)]
#[command(name = "notigen", version, about, long_about)]
struct Args {
    /// RNG seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of notifications to write
    #[arg(long, short = 'n', default_value_t = 1000)]
    count: u64,
    /// Number of instance slots (about half as many tenants)
    #[arg(long, default_value_t = 50)]
    instances: usize,
    /// Simulated start time, UTC ("2015-03-01T18:00:00" or "2015-03-01 18:00:00")
    #[arg(long, value_parser = parse_start, default_value = "2015-03-01T18:00:00")]
    start: NaiveDateTime,
    /// Operations per hour over all instances
    #[arg(long, default_value_t = 60.0)]
    ops_per_hour: f64,
    /// Fraction of creates that fail with compute.instance.create.error
    #[arg(long, default_value_t = 0.05)]
    error_rate: f64,
    /// Number of compute hosts
    #[arg(long, default_value_t = 8)]
    hosts: usize,
    /// Wrap each notification in the oslo.messaging v2 envelope
    #[arg(long)]
    oslo_v2: bool,
    /// Output file, or "-" for stdout
    #[arg(long, short = 'o', default_value = "-")]
    out: String,
    /// Publish to this broker (amqp://user:pass@host:port/vhost) instead of writing
    /// lines: JSON bodies, publisher confirms, like notabene
    #[arg(long)]
    amqp: Option<String>,
    /// With --amqp: the exchange (declared topic, durable)
    #[arg(long, default_value = "nova")]
    exchange: String,
    /// With --amqp: the routing key
    #[arg(long, default_value = "monitor.info")]
    routing_key: String,
    /// With --amqp: also declare this durable queue and bind it with the routing key
    #[arg(long)]
    queue: Option<String>,
    /// With --amqp: messages per second (0 = as fast as confirms allow)
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

/// `--amqp`: publish every notification with confirms, at `--rate` per second.
fn publish(args: &Args, url: &str, notifications: impl Iterator<Item = Value>) -> Result<()> {
    use stv3_amqp::{AmqpSettings, ExchangeSpec, OutMessage, Publisher, QueueSpec, Topology};
    let settings = AmqpSettings::from_url(url)?;
    let exchange = ExchangeSpec {
        name: args.exchange.clone(),
        kind: "topic".into(),
        durable: true,
        auto_delete: false,
    };
    let topology = match &args.queue {
        Some(q) => Topology::queue_on_exchange(
            QueueSpec {
                name: q.clone(),
                durable: true,
                auto_delete: false,
                arguments: vec![],
            },
            Some(exchange),
            std::slice::from_ref(&args.routing_key),
        ),
        None => Topology {
            exchanges: vec![exchange],
            ..Default::default()
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut p = Publisher::connect(&settings, "notigen").await?;
        p.declare(topology).await?;
        let msgs = notifications.map(|v| {
            let mut m = OutMessage::raw(&args.exchange, &args.routing_key, v.to_string().into_bytes());
            m.message_id = v.get("message_id").and_then(Value::as_str).map(str::to_string);
            m
        });
        let stats = p.publish_at_rate(msgs, Some(args.rate), None).await?;
        p.close().await;
        eprintln!(
            "notigen: published {} notification(s) to {} ({}) with confirms in {:.2} s ({:.0}/s, {} reconnect(s))",
            stats.confirmed, args.exchange, args.routing_key, stats.elapsed.as_secs_f64(), stats.rate(), stats.reconnects
        );
        Ok(())
    })
}

fn parse_start(s: &str) -> Result<NaiveDateTime, String> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| format!("invalid start time {s:?}: expected YYYY-MM-DDTHH:MM:SS"))
}

/// Where notifications go.
enum Output {
    /// JSON lines to a file or stdout.
    Lines(Box<dyn Write>),
}

impl Output {
    fn open(target: &str) -> Result<Output> {
        Ok(if target == "-" {
            Output::Lines(Box::new(BufWriter::new(io::stdout().lock())))
        } else {
            let f = File::create(target).with_context(|| format!("cannot create {target}"))?;
            Output::Lines(Box::new(BufWriter::with_capacity(1 << 16, f)))
        })
    }

    fn send(&mut self, notification: &Value) -> Result<()> {
        match self {
            Output::Lines(w) => {
                serde_json::to_writer(&mut *w, notification)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::Lines(mut w) => w.flush().context("flushing output"),
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = GenConfig {
        seed: args.seed,
        instances: args.instances,
        start: args.start,
        ops_per_hour: args.ops_per_hour,
        error_rate: args.error_rate,
        hosts: args.hosts,
        oslo_v2: args.oslo_v2,
    };
    anyhow::ensure!(cfg.instances > 0, "--instances must be at least 1");
    anyhow::ensure!(cfg.ops_per_hour > 0.0, "--ops-per-hour must be positive");
    if let Some(url) = &args.amqp {
        return publish(&args, url, Generator::new(cfg).take(args.count as usize));
    }
    let mut out = Output::open(&args.out)?;
    for n in Generator::new(cfg).take(args.count as usize) {
        out.send(&n)?;
    }
    out.finish()
}

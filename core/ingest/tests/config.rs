//! yagi.conf loading: the sandbox file loads unchanged; every error names file:line, [section] and key.

use std::path::Path;
use std::time::Duration;

use stv3_ingest::config::{App, YagiConfig};

const SANDBOX: &str = r#"[global]
verbose = True
debug = True
update_timer = 10

[event_worker]
pidfile = yagi_event_worker.pid
daemonize = False
event_driver = yagi.broker.rabbit.Broker

[rabbit_broker]
host = localhost
user = guest
password = guest
port = 5672
vhost = /
poll_delay = 0.5
exchange_name = 'monitor'

[logging]
logfile = /var/log/yagi.log
default_level = DEBUG

[consumers]
queues = monitor.info3,monitor.error3

[consumer:monitor.info3]
apps = winchester.yagi_handler.WinchesterHandler, yagi.handler.shoebox_handler.ShoeboxHandler
exchange = nova
exchange_type = topic
routing_key = monitor.info
durable = True
max_messages = 100

[consumer:monitor.error3]
apps = winchester.yagi_handler.WinchesterHandler
exchange = nova
exchange_type = topic
routing_key = monitor.error
durable = True
max_messages = 100

[filters]
shoebox = compute.instance.exists

[winchester]
config_file = /etc/stv3/winchester.yaml

[shoebox]
working_directory=/etc/stv3/cell1/events
destination_folder=/etc/stv3/tarballs
filename_template=%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json
roll_manager=shoebox.roll_manager:WritingJSONRollManager
roll_size_mb=30
wrap_payload_with_region=True
wrap_region=region
wrap_cell=cell1
"#;

#[test]
fn the_sandbox_config_loads_unchanged() {
    let cfg = YagiConfig::parse(SANDBOX, Path::new("/etc/yagi/yagi.conf")).unwrap();
    assert_eq!(cfg.update_timer, Duration::from_secs(10));
    assert_eq!(cfg.consumers.len(), 2);
    let c = &cfg.consumers[0];
    assert_eq!(
        (c.name.as_str(), c.queue.as_str()),
        ("monitor.info3", "monitor.info3")
    );
    assert_eq!(c.apps, vec![App::Winchester, App::Shoebox]);
    assert_eq!(
        (c.exchange.as_deref(), c.exchange_type.as_str()),
        (Some("nova"), "topic")
    );
    assert_eq!(c.routing_keys, vec!["monitor.info"]);
    assert!(c.durable && c.exchange_durable && !c.auto_delete);
    assert_eq!(
        (c.max_messages, c.prefetch, c.store_inflight),
        (100, 400, 2),
        "prefetch covers 2 batches in flight, one ahead, one arriving"
    );
    assert_eq!(
        c.broker.amqp.uri(),
        "amqp://guest:guest@localhost:5672/%2F?heartbeat=30"
    );
    assert_eq!(
        c.winchester.as_ref().unwrap().config_file,
        Path::new("/etc/stv3/winchester.yaml")
    );
    let s = c.shoebox.as_ref().unwrap();
    assert_eq!(
        s.filename_template, "%Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json",
        "read raw, no % interpolation"
    );
    assert_eq!(
        (
            s.roll_size_mb,
            s.wrap_payload_with_region,
            s.wrap_cell.as_str()
        ),
        (30, true, "cell1")
    );
    assert!(c.filter_for(App::Shoebox).admits("compute.instance.exists"));
    assert!(!c.filter_for(App::Shoebox).admits("compute.instance.update"));
    assert!(c
        .filter_for(App::Winchester)
        .admits("compute.instance.update"));
    assert!(cfg.consumers[1].shoebox.is_none());
    assert_eq!(cfg.stv3.quarantine_dir, Path::new("/etc/yagi/./quarantine"));
}

#[test]
fn multi_cell_overrides_and_stv3_keys() {
    let text = r#"
[consumers]
queues = cell1, cell2
[consumer:cell1]
queue = monitor.info
apps = winchester, shoebox
exchange = nova
routing_keys = monitor.info, monitor.error
max_messages = 500
[consumer:cell2]
queue = monitor.info
apps = winchester
exchange = nova
max_messages = 50
[rabbit_broker]
host = broker1
[rabbit_broker:cell2]
host = broker2
port = 5673
[stv3]
state_dir = /var/lib/yagi
ops_address = 127.0.0.1:9464
linger_ms = 20
[stv3:cell2]
prefetch = 7
store_inflight = 1
[shoebox:cell1]
working_directory = events1
"#;
    let cfg = YagiConfig::parse(text, Path::new("/etc/yagi/yagi.conf")).unwrap();
    let (a, b) = (&cfg.consumers[0], &cfg.consumers[1]);
    assert_eq!(
        (a.broker.amqp.host.as_str(), a.broker.amqp.port),
        ("broker1", 5672)
    );
    assert_eq!(
        (b.broker.amqp.host.as_str(), b.broker.amqp.port),
        ("broker2", 5673)
    );
    assert_eq!(a.routing_keys, vec!["monitor.info", "monitor.error"]);
    assert_eq!(
        b.routing_keys,
        vec!["monitor.info"],
        "default binding key = queue name"
    );
    assert_eq!((a.prefetch, b.prefetch), (2000, 7));
    assert_eq!((a.store_inflight, b.store_inflight), (2, 1));
    assert_eq!(
        a.shoebox.as_ref().unwrap().working_directory,
        Path::new("/etc/yagi/events1")
    );
    assert_eq!(
        cfg.stv3.quarantine_dir,
        Path::new("/var/lib/yagi/quarantine")
    );
    assert_eq!(
        cfg.stv3.ops_address,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(cfg.stv3.linger, Duration::from_millis(20));
}

fn check(text: &str, expected: &str) {
    let full = format!("[consumers]\nqueues = q\n{text}");
    match YagiConfig::parse(&full, Path::new("yagi.conf")) {
        Ok(_) => panic!("{text:?} loaded, expected error {expected:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.contains(expected),
                "{text:?}\n  got: {s}\n want: {expected}"
            );
        }
    }
}

const Q: &str = "[consumer:q]\napps = winchester\nmax_messages = 10\n";

#[test]
fn errors_name_file_line_section_and_key() {
    let cases: &[(&str, &str)] = &[
        ("[consumer:q]\napps = yagi.handler.atompub_handler.AtomPub\nmax_messages = 1\n",
            "yagi.conf:4: [consumer:q] apps: unknown app \"yagi.handler.atompub_handler.AtomPub\""),
        ("[consumer:q]\napps = winchester\n", "yagi.conf:3: [consumer:q] max_messages: missing"),
        ("[consumer:q]\napps = winchester\nmax_messages = lots\n", "yagi.conf:5: [consumer:q] max_messages: \"lots\" is not a whole number 1-65535"),
        ("[consumer:q]\napps = winchester\nmax_messages = 0\n", "yagi.conf:5: [consumer:q] max_messages: \"0\" is not a whole number"),
        ("[consumer:q]\nmax_messages = 1\n", "yagi.conf:3: [consumer:q] apps: missing"),
        ("[consumer:q]\napps = winchester, winchester\nmax_messages = 1\n", "yagi.conf:4: [consumer:q] apps: \"winchester\" is listed twice"),
        ("[other]\nx=1\n", "yagi.conf:2: [consumers] queues: \"q\" has no [consumer:q] section"),
        (&format!("{Q}durable = yes please\n"), "yagi.conf:6: [consumer:q] durable: \"yes please\" is not a boolean"),
        (&format!("{Q}exchange_type = weird\n"), "yagi.conf:6: [consumer:q] exchange_type: \"weird\" is not topic"),
        (&format!("{Q}[rabbit_broker]\nport = http\n"), "yagi.conf:7: [rabbit_broker] port: \"http\" is not a port number"),
        (&format!("{Q}[rabbit_broker:q]\nreconnect_delay = soon\n"), "yagi.conf:7: [rabbit_broker:q] reconnect_delay: \"soon\" is not a number of seconds"),
        (&format!("{Q}[global]\nupdate_timer = x\n"), "yagi.conf:7: [global] update_timer: \"x\" is not a number of seconds"),
        (&format!("{Q}[event_worker]\nevent_driver = yagi.broker.kafka.Broker\n"), "yagi.conf:7: [event_worker] event_driver: \"yagi.broker.kafka.Broker\" is not supported"),
        (&format!("{Q}[stv3]\nops_address = localhost\n"), "yagi.conf:7: [stv3] ops_address: \"localhost\" is not a host:port"),
        (&format!("{Q}[stv3]\namqp_url = http://x\n"), "yagi.conf:7: [stv3] amqp_url: invalid AMQP URL"),
        (&format!("{Q}[stv3:q]\nprefetch = -1\n"), "yagi.conf:7: [stv3:q] prefetch: \"-1\" is not a whole number"),
        ("[consumer:q]\napps = shoebox\nmax_messages = 1\n[shoebox]\nroll_manager = shoebox.roll_manager:WritingRollManager\n",
            "yagi.conf:7: [shoebox] roll_manager: \"shoebox.roll_manager:WritingRollManager\" is not supported"),
        ("[consumer:q]\napps = shoebox\nmax_messages = 1\n[shoebox]\nroll_size_mb = big\n", "yagi.conf:7: [shoebox] roll_size_mb: \"big\" is not a whole number of MB"),
        (&format!("{Q}filters = f1\n"), "yagi.conf:6: [consumer:q] filters: filter \"f1\" has no [filter:f1] section"),
        (&format!("{Q}filters = f1\n[filter:f1]\nmap_file = m.json\nmethod = Nope\n"), "yagi.conf:9: [filter:f1] method: \"Nope\" is not one of"),
        (&format!("{Q}[winchester]\nconfig_file = %(missing)s\n"), "yagi.conf:7: [winchester] config_file: %(missing)s refers to a key that is not set"),
        ("junk\n", "yagi.conf:3: expected `key = value`, got \"junk\""),
    ];
    for (text, expected) in cases {
        check(text, expected);
    }
    // queues missing entirely
    let e = YagiConfig::parse("[global]\nverbose=True\n", Path::new("yagi.conf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("yagi.conf: [consumers] queues: missing"), "{e}");
}

#[test]
fn all_errors_are_collected() {
    let text = "[consumers]\nqueues = a, b\n[consumer:a]\napps = nope\nmax_messages = 1\n[consumer:b]\napps = winchester\n";
    let e = YagiConfig::parse(text, Path::new("y.conf")).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
}

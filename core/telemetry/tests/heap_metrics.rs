//! Every `/metrics` scrape reports malloc's own account of the heap, so an
//! operator (and the soak bench) can tell live data from fragmentation when
//! RSS climbs. Its own test binary: the numbers are process-wide.

use std::io::{Read, Write};

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the ops server");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body
}

fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn metrics_report_the_live_heap_and_follow_an_allocation() {
    use stv3_telemetry::{HEAP_FREE_METRIC, HEAP_IN_USE_METRIC};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let addr = rt
        .block_on(stv3_telemetry::serve_ops(
            "heap-test",
            "127.0.0.1:0".parse().unwrap(),
            stv3_telemetry::Health::healthy(),
        ))
        .expect("serve /metrics");

    let before = scrape(addr);
    let in_use_before = gauge(&before, HEAP_IN_USE_METRIC);
    assert!(gauge(&before, HEAP_FREE_METRIC) >= 0.0);

    // 48 MiB held in 4 KiB blocks (heap chunks, not one mmap), touched.
    let held: Vec<Vec<u8>> = (0..12 * 1024).map(|i| vec![i as u8; 4096]).collect();
    let during = gauge(&scrape(addr), HEAP_IN_USE_METRIC);
    assert!(
        during >= in_use_before + 48.0 * 1024.0 * 1024.0,
        "in use {in_use_before} -> {during} bytes with 48 MiB more held"
    );

    drop(std::hint::black_box(held));
    let after = gauge(&scrape(addr), HEAP_IN_USE_METRIC);
    assert!(
        after <= during - 40.0 * 1024.0 * 1024.0,
        "in use {during} -> {after} bytes after 48 MiB were freed"
    );
}

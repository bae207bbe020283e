//! Throughput of `Distiller::distill_bytes` (JSON parsing included) in wall
//! time AND in this thread's CPU time (from /proc/thread-self/schedstat), so
//! numbers stay comparable on a loaded machine.
//!
//! cargo run --release -p stv3-distiller --example throughput -- DEFS INPUT [ROUNDS]

use std::time::Instant;

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: throughput DEFS INPUT [ROUNDS]");
    let rounds: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let d = stv3_distiller::Distiller::from_file(&args[1], false)?;
    let data = std::fs::read(&args[2])?;
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // warm-up round
    for l in &lines {
        let _ = d.distill_bytes(l);
    }
    for round in 0..rounds {
        let (t0, c0) = (Instant::now(), thread_cpu_ns().unwrap_or(0));
        let mut events = 0usize;
        for l in &lines {
            if d.distill_bytes(l)
                .map(|o| o.event().is_some())
                .unwrap_or(false)
            {
                events += 1;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (thread_cpu_ns().unwrap_or(0) - c0) as f64 / 1e9;
        println!(
            "{{\"round\":{round},\"notifications\":{},\"events\":{events},\"wall_s\":{wall:.4},\"cpu_s\":{cpu:.4},\"per_s_wall\":{:.0},\"per_s_cpu\":{:.0}}}",
            lines.len(),
            lines.len() as f64 / wall,
            lines.len() as f64 / cpu
        );
    }
    Ok(())
}

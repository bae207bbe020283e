//! Throughput of `Distiller::distill_bytes` (JSON parsing included) in wall
//! time AND in this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, exact to
//! the microsecond; /proc/thread-self/schedstat lags by up to a scheduler
//! tick), so numbers stay comparable on a loaded machine. The last line sums
//! all measured rounds.
//!
//! cargo run --release -p stv3-distiller --example throughput -- DEFS INPUT [ROUNDS]

use std::time::Instant;

fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
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
    let (mut total_wall, mut total_cpu) = (0.0, 0.0);
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
        total_wall += wall;
        total_cpu += cpu;
        println!(
            "{{\"round\":{round},\"notifications\":{},\"events\":{events},\"wall_s\":{wall:.4},\"cpu_s\":{cpu:.4},\"per_s_wall\":{:.0},\"per_s_cpu\":{:.0}}}",
            lines.len(),
            lines.len() as f64 / wall,
            lines.len() as f64 / cpu
        );
    }
    let n = (lines.len() * rounds) as f64;
    println!(
        "{{\"rounds\":{rounds},\"notifications\":{n},\"wall_s\":{total_wall:.4},\"cpu_s\":{total_cpu:.4},\"per_s_wall\":{:.0},\"per_s_cpu\":{:.0}}}",
        n / total_wall,
        n / total_cpu
    );
    Ok(())
}

//! The Prometheus recorder keeps histogram samples until upkeep drains them into
//! the summaries; `install_metrics` runs that upkeep on its own thread, so a process
//! that nobody scrapes does not grow without bound, and no sample is lost to it.

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task (Linux)")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn upkeep_thread_drains_histograms_without_losing_samples() {
    let handle = stv3_telemetry::install_metrics();
    // a new thread names itself once it runs
    let named = || {
        thread_names()
            .iter()
            .any(|n| n == stv3_telemetry::UPKEEP_THREAD)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !named() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        named(),
        "no {} thread among {:?}",
        stv3_telemetry::UPKEEP_THREAD,
        thread_names()
    );
    for i in 0..50_000u32 {
        metrics::histogram!("upkeep_test_seconds").record(f64::from(i % 100) / 1000.0);
    }
    // let the upkeep thread run at least once, then the scrape still counts every sample
    std::thread::sleep(stv3_telemetry::UPKEEP_EVERY + std::time::Duration::from_secs(1));
    let text = handle.render();
    let count = text
        .lines()
        .find(|l| l.starts_with("upkeep_test_seconds_count"))
        .unwrap_or_else(|| panic!("no count line in:\n{text}"));
    assert_eq!(count.split_whitespace().last(), Some("50000"), "{count}");
}

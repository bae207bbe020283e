//! Freed heap pages go back to the kernel (`release_free_memory`, run by the
//! upkeep thread): RSS follows live memory, not the highest point a burst took it.

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS line")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn pages_freed_between_live_chunks_are_released() {
    const CHUNKS: usize = 50_000; // 4 KiB each: ~200 MB, below the mmap threshold
    let before = rss_kb();
    let chunks: Vec<Vec<u8>> = (0..CHUNKS)
        .map(|i| vec![(i % 251) as u8 + 1; 4096])
        .collect();
    // Free all but every 64th: the live ones pin the heap, so nothing is at its top.
    let kept: Vec<Vec<u8>> = chunks
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| (i % 64 == 0).then_some(c))
        .collect();
    let freed_but_held = rss_kb();
    assert!(
        freed_but_held > before + 150_000,
        "the allocator already returned the pages ({before} -> {freed_but_held} kB): this test shows nothing here"
    );
    stv3_telemetry::release_free_memory();
    let after = rss_kb();
    assert!(
        after < before + 50_000,
        "RSS {before} kB before the burst, {freed_but_held} kB after freeing, {after} kB after release"
    );
    // The live chunks are intact.
    assert!(kept
        .iter()
        .enumerate()
        .all(|(k, c)| c.iter().all(|b| *b == ((k * 64) % 251) as u8 + 1)));
}

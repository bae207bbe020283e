//! `trim_heap` gives back the pages of a burst's freed small allocations, which
//! glibc otherwise keeps (they are below the mmap threshold and not at the top
//! of the heap, so free() alone never returns them).
//! Its own test binary: RSS and malloc state are process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_small_allocations_go_back_to_the_kernel_after_a_trim() {
    use std::hint::black_box;
    use stv3_telemetry::{trim_heap, tune_allocator};

    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    tune_allocator();
    // A burst: 64 MiB in 4 KiB blocks (heap, not mmap), touched.
    let blocks: Vec<Vec<u8>> = (0..16 * 1024)
        .map(|i| black_box(vec![i as u8; 4096]))
        .collect();
    // Keep every 64th block alive so the heap's top and middle stay pinned.
    let mut kept = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 64 == 0 {
            kept.push(b);
        }
    }
    let after_free = rss_bytes();
    assert!(trim_heap(), "malloc_trim released nothing");
    let after_trim = rss_bytes();
    assert!(
        after_free - after_trim.min(after_free) >= 32 << 20,
        "trim gave back {} bytes (RSS {after_free} -> {after_trim}); expected most of the 63 MiB freed",
        after_free.saturating_sub(after_trim)
    );
    black_box(kept);
}

//! `tune_allocator` fixes glibc's mmap threshold: a batch-sized buffer is
//! mmapped (and so unmapped on free) even after a larger one was freed. With
//! glibc's default dynamic threshold the second, smaller buffer would come
//! from the heap, where its pages stay with the process.
//! Its own test binary: malloc settings are process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn buffers_above_the_threshold_stay_mmapped_after_a_larger_one_is_freed() {
    use std::hint::black_box;
    use stv3_telemetry::{tune_allocator, MALLOC_ENV, MMAP_THRESHOLD};

    fn mmapped_bytes() -> usize {
        // SAFETY: mallinfo2 only reads malloc's statistics.
        unsafe { libc::mallinfo2() }.hblkhd
    }
    fn filled(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        v.resize(n, 7u8);
        black_box(v)
    }

    for k in MALLOC_ENV {
        assert!(
            std::env::var_os(k).is_none(),
            "{k} is set; unset it for this test"
        );
    }
    assert!(tune_allocator(), "mallopt refused the settings");

    let big = 8 << 20;
    let before = mmapped_bytes();
    drop(filled(big)); // the default malloc raises its threshold past 8 MiB here
    for size in [4 << 20, 1 << 20, 2 * MMAP_THRESHOLD as usize] {
        let v = filled(size);
        let now = mmapped_bytes();
        assert!(
            now >= before + size,
            "a {size}-byte buffer is not mmapped after an 8 MiB one was freed \
             (mmapped {before} -> {now} bytes)"
        );
        drop(v);
    }
}

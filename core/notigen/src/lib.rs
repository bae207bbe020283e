//! notigen: deterministic, realistic nova notification streams from a seed.
//!
//! [`Generator`] simulates nova activity for a set of instances (create with
//! the scheduler, resize, rebuild, power off/on, reboot, snapshot, delete,
//! failed creates, end-of-day `compute.instance.exists`) and yields the
//! notifications as `serde_json::Value`s in timestamp order. Our own
//! design, not a port of the original template system. See
//! [`generator`] for the invariants.
//!
//! ```
//! use stv3_notigen::{GenConfig, Generator};
//! let first: Vec<_> = Generator::new(GenConfig::new(7, 10)).take(5).collect();
//! assert_eq!(first[0]["event_type"], "scheduler.run_instance.start");
//! ```

pub mod catalog;
pub mod generator;

pub use generator::{format_ts, GenConfig, Generator};

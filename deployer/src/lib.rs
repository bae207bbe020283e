//! The `stv3ctl` library. The binary (`src/main.rs` at the workspace root) is a
//! thin clap front end over these modules:
//!
//! * [`testrun`]: `stv3ctl test`, which runs every suite and summarises it.
//! * [`package`]: `stv3ctl package`, the reproducible release tarball with its
//!   manifest, plus `package verify` (also used by deploy) and `package inspect`.
//! * [`sandbox`]: `stv3ctl sandbox`, the whole system on one machine.
//! * [`bench`]: `stv3ctl bench`, a whole region on this machine under load,
//!   beside the raw broker and the original (`result.json`, `plot.png`).

pub mod bench;
pub mod deploy;
pub mod inventory;
pub mod package;
pub mod sandbox;
pub mod testrun;
pub mod transport;

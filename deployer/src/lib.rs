//! The `stv3ctl` library. The binary (`src/main.rs` at the workspace root) is a
//! thin clap front end over these modules:
//!
//! * [`testrun`]: `stv3ctl test`, which runs every suite and summarises it.
//! * [`package`]: `stv3ctl package`, the reproducible release tarball with its
//!   manifest, plus `package verify` (also used by deploy) and `package inspect`.

pub mod package;
pub mod testrun;
pub mod inventory;
pub mod deploy;
pub mod transport;

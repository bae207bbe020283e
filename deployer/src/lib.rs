//! The `stv3ctl` library. The binary (`src/main.rs` at the workspace root) is a
//! thin clap front end over these modules:
//!
//! * [`testrun`]: `stv3ctl test`, which runs every suite and summarises it.

pub mod testrun;
pub mod inventory;

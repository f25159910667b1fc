//! snapsim-sim: the simulated world the engine runs in.
//!
//! The one design decision to know: the engine's nodes are sans-I/O state machines from
//! `snapsim-core`; this crate only drives them (on madsim nodes: virtual time, FIFO streams,
//! kill and restart; or in process, for tests and the oracle), injects faults, records the
//! trace and checks the result. A run is a pure
//! function of (run config, seed, build).

pub mod analysis;
pub mod check;
pub mod disk;
pub mod driver;
pub mod faults;
pub mod harness;
pub mod liveness;
pub mod model;
pub mod rng;
pub mod trace;
mod world;

//! Seeded randomness: every draw of a run comes from its seed, one stream per subsystem.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The subsystems that draw, each from its own stream so that one drawing more never shifts
/// another's draws (as TigerBeetle's VOPR seeds one PRNG per subsystem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The job's shape and input data.
    Workload = 1,
    /// The fault schedule.
    Faults = 2,
    /// Cluster timing choices (first trigger delay).
    Cluster = 3,
    /// The simulated disk (latencies, error and corruption draws, torn lengths).
    Disk = 4,
    /// Extra link latencies.
    Network = 5,
}

/// A seeded, portable random stream.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream of `stream` for run seed `seed`.
    pub fn new(seed: u64, stream: Stream) -> SimRng {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream as u64);
        SimRng(rng)
    }

    /// A draw in `[low, high]` (inclusive).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        let span = high - low;
        if span == u64::MAX {
            return self.0.next_u64();
        }
        low + self.0.next_u64() % (span + 1)
    }

    /// A draw in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no values");
        self.0.next_u64() % n
    }
}

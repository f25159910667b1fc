//! The coverage sweep: thirteen runs that together reach every coverage probe of the engine.
//!
//! The README's default sweep reaches 30 of the 41 probes; what it misses needs a fault profile
//! or an algorithm other than the scenarios' own, and a few decisions need rare coincidences
//! (a TaskManager's acknowledgements lost just long enough for the next checkpoint to
//! subsume the pending one, a restart strategy used up, a JobManager that starts over after
//! the job's end was recorded). Each run below was found by a sweep over every algorithm and
//! profile (`snapsim sweep --faults F --algorithm A --seeds 0..20`, and `--seeds 0..300` for
//! the rarest) and `snapsim coverage`; when a change to the engine or a profile moves a probe
//! out of these runs, this test names it, and the same sweeps find a run that reaches it again.

use crate::{catalog, find};
use snapsim_core::probes::{Probe, ProbeSet};
use snapsim_scenarios::{run_variant, Variant, Verdict};
use std::collections::BTreeSet;

/// (scenario, fault profile, snapshot algorithm, seed).
const COVERAGE_SWEEP: [(&str, &str, &str, u64); 13] = [
    ("hot-key", "swarm", "unaligned", 2),
    ("resume", "swarm", "aligned-timeout", 0),
    ("memory-budget", "swarm", "aligned", 3),
    ("chain-join", "swarm", "aligned", 15),
    ("back-pressure", "swarm", "at-least-once", 13),
    ("resume", "crashes-and-storage", "aligned", 1),
    ("swarm", "crashes-and-storage", "aligned", 5),
    ("keyed-sum", "swarm", "chandy-lamport", 16),
    ("co-window", "swarm", "aligned", 28),
    ("hot-key", "swarm", "aligned", 56),
    ("keyed-sum", "swarm", "aligned", 46),
    ("changelog", "swarm", "aligned", 1),
    ("uncoordinated", "swarm", "communication-induced", 0),
];

/// Why: a probe no run reaches marks a path of the engine that no test exercises under faults;
/// the documented coverage sweep must reach every one, and pass.
#[test]
fn the_coverage_sweep_reaches_every_probe_and_passes() {
    let mut reached = ProbeSet::default();
    for (scenario, faults, algorithm, seed) in COVERAGE_SWEEP {
        let variant = Variant::new(catalog(), Some(faults.into()), Some(algorithm.into()), &[])
            .expect("known names");
        let (outcome, result) =
            run_variant(catalog(), find(scenario).expect("built-in"), seed, &variant)
                .expect("judged");
        assert_eq!(
            outcome.verdict,
            Verdict::Passed,
            "{scenario} seed {seed} ({faults}, {algorithm}): {:?}",
            outcome.violations
        );
        reached = reached.union(result.probes);
    }
    let reached: BTreeSet<Probe> = reached.iter().collect();
    let missing: Vec<Probe> = Probe::ALL
        .into_iter()
        .filter(|probe| !reached.contains(probe))
        .collect();
    assert!(
        missing.is_empty(),
        "the coverage sweep no longer reaches {missing:?}"
    );
}

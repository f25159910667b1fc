//! A named scenario: a job drawn from a seed and the fault profile it runs under.

use snapsim_core::algorithm::SnapshotAlgorithm;
use snapsim_core::cluster::ClusterConfig;
use snapsim_core::config::StateBackend;
use snapsim_core::job::JobGraph;
use snapsim_sim::rng::{SimRng, Stream};
use std::sync::Arc;

/// Draws a scenario's job and cluster from the seed's workload and cluster streams.
pub type JobFn = dyn Fn(&mut Draws) -> (JobGraph, ClusterConfig) + Send + Sync;

/// A named scenario: a job drawn from a seed, and the fault profile it runs with unless told
/// otherwise.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line for `snapsim list`.
    pub description: &'static str,
    /// The name of its fault profile.
    pub faults: &'static str,
    /// Its job and cluster, drawn from the seed.
    pub job: Arc<JobFn>,
    /// The job is a new one that starts from the snapshot an earlier job left (see
    /// `scenarios/src/resume.rs`).
    pub resumes: bool,
    /// Why the scenario cannot be judged with an algorithm that records channel state, if it
    /// cannot.
    pub refuses_channel_state: Option<&'static str>,
    /// Why the scenario cannot be judged with an algorithm without barriers, if it cannot.
    pub refuses_without_barriers: Option<&'static str>,
}

impl Scenario {
    /// A scenario of a job drawn by `job`, run under the profile named `faults`.
    pub fn new(
        name: &'static str,
        description: &'static str,
        faults: &'static str,
        job: impl Fn(&mut Draws) -> (JobGraph, ClusterConfig) + Send + Sync + 'static,
    ) -> Scenario {
        Scenario {
            name,
            description,
            faults,
            job: Arc::new(job),
            resumes: false,
            refuses_channel_state: None,
            refuses_without_barriers: None,
        }
    }

    /// The scenario's job is a new one that starts from the snapshot an earlier job left.
    pub fn resuming(mut self) -> Scenario {
        self.resumes = true;
        self
    }

    /// The scenario cannot be judged fairly with an algorithm that records channel state,
    /// for `reason`: such combinations are refused rather than run red.
    pub fn refusing_channel_state(mut self, reason: &'static str) -> Scenario {
        self.refuses_channel_state = Some(reason);
        self
    }

    /// The scenario cannot be judged fairly with an algorithm without barriers, for `reason`.
    pub fn refusing_without_barriers(mut self, reason: &'static str) -> Scenario {
        self.refuses_without_barriers = Some(reason);
        self
    }

    /// Why this scenario cannot run with `backend`, if it cannot: a backend that uploads files
    /// needs the checkpoint directory a scenario with state in the JobManager's memory lacks.
    pub fn refuses_backend(&self, backend: StateBackend) -> Option<String> {
        if backend == StateBackend::Heap {
            return None;
        }
        // Every seed keeps its checkpoints in the same place: seed 0's job tells.
        let (job, _) = (self.job)(&mut Draws::new(0));
        self.refuses_backend_for(backend, &job)
    }

    /// Why this scenario's `job` (a seed's) cannot run with `backend`, if it cannot.
    pub fn refuses_backend_for(&self, backend: StateBackend, job: &JobGraph) -> Option<String> {
        let protocol = job.checkpoint.logging;
        if let Some(protocol) = protocol.filter(|_| backend != StateBackend::Heap) {
            return Some(format!(
                "scenario {} cannot run with --backend {} under {protocol:?} checkpointing: its local snapshots hold the heap backend's whole state",
                self.name,
                backend.name()
            ));
        }
        let on_files = job.checkpoint.directory.is_some();
        (backend != StateBackend::Heap && !on_files).then(|| {
            format!(
                "scenario {} cannot run with --backend {}: it keeps its checkpoints in the JobManager's memory, and that backend uploads files into a checkpoint directory",
                self.name,
                backend.name()
            )
        })
    }

    /// Why this scenario cannot be judged fairly with `algorithm`, if it cannot: then no run
    /// is made, rather than one whose failure would not be a bug.
    pub fn refuses(&self, algorithm: &dyn SnapshotAlgorithm) -> Option<String> {
        let channel_state =
            (self.refuses_channel_state).filter(|_| algorithm.records_channel_state());
        let without_barriers =
            (self.refuses_without_barriers).filter(|_| algorithm.without_barriers());
        let reason = channel_state.or(without_barriers)?;
        Some(format!(
            "scenario {} cannot be judged with --algorithm {}: {reason}",
            self.name,
            algorithm.name()
        ))
    }
}

/// The seed's independent streams, one per subsystem, so that drawing more faults never
/// changes the workload.
pub struct Draws {
    /// The job: input logs, keys, parallelism.
    pub workload: SimRng,
    /// The fault profile's stream.
    pub faults: SimRng,
    /// The cluster: timing such as the first trigger's delay.
    pub timing: SimRng,
}

impl Draws {
    /// The streams of `seed`.
    pub fn new(seed: u64) -> Draws {
        Draws {
            workload: SimRng::new(seed, Stream::Workload),
            faults: SimRng::new(seed, Stream::Faults),
            timing: SimRng::new(seed, Stream::Cluster),
        }
    }
}

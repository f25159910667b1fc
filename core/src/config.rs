//! Checkpoint and restart options with Flink's defaults and validation rules (Flink's
//! `CheckpointingOptions`, `CheckpointCoordinatorConfiguration`, `RestartStrategyOptions`).
//!
//! Every rule is checked when the job is built ([`CheckpointConfig::validate`]); a violation is a
//! [`ConfigError`] that names the option and the rule, never a panic.

use crate::ids::Tick;
use crate::retention::ExternalizedRetention;
use crate::storage::{StoragePath, HA_DIRECTORY};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Flink's lower bound for the interval and the timeout (`MINIMAL_CHECKPOINT_TIME`, 10 ms).
pub const CHECKPOINT_TIME_MIN_TICKS: u64 = 10;
/// Flink's default checkpoint timeout: 10 minutes.
pub const CHECKPOINT_TIMEOUT_DEFAULT_TICKS: u64 = 600_000;
/// Flink caps the min pause at one year.
pub const MIN_PAUSE_MAX_TICKS: u64 = 365 * 24 * 3600 * 1000;
/// A bound on concurrent checkpoints so the coordinator's tables stay small.
pub const CONCURRENT_CHECKPOINTS_MAX: u32 = 64;
/// A bound on retained checkpoints for the same reason.
pub const RETAINED_CHECKPOINTS_MAX: u32 = 1024;
/// A bound on restart attempts: every attempt is a new `Attempt` number.
pub const RESTART_ATTEMPTS_MAX: u32 = 1_000_000;

/// How barriers are handled at tasks with several input channels (Flink's
/// `SingleCheckpointBarrierHandler` and `CheckpointBarrierTracker`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CheckpointingMode {
    /// Aligned barriers: a channel blocks once its barrier arrived (the default).
    #[default]
    ExactlyOnce,
    /// Barrier tracking: channels never block; records may be replayed twice after restore.
    AtLeastOnce,
}

/// The checkpoint options of a job.
///
/// Invariant (after [`validate`](Self::validate)): every field is within Flink's rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// The periodic trigger interval. `None`: periodic checkpointing is off (the Flink default).
    pub interval_ticks: Option<u64>,
    /// EXACTLY_ONCE (default) or AT_LEAST_ONCE.
    pub mode: CheckpointingMode,
    /// The minimum pause from the last successful completion to the next periodic trigger.
    pub min_pause_ticks: u64,
    /// The maximum number of pending checkpoints.
    pub max_concurrent: u32,
    /// A pending checkpoint older than this is aborted as expired.
    pub timeout_ticks: u64,
    /// Consecutive counted failures tolerated before the job fails (Flink's
    /// `CheckpointFailureManager`).
    pub tolerable_failed: u32,
    /// How many completed checkpoints the store keeps.
    pub retained: u32,
    /// `state.checkpoints.dir`: set, checkpoints are files under `{directory}/{job}/`
    /// (FileSystemCheckpointStorage); unset, snapshots live in the JobManager's memory
    /// (JobManagerCheckpointStorage), within `memory_storage`'s limits.
    #[serde(default)]
    pub directory: Option<String>,
    /// `state.savepoints.dir`: where savepoints go, `{savepoint_directory}/savepoint-{job}-{id}/`.
    /// Savepoints always need files, whatever the checkpoint storage (Flink's
    /// `MemoryBackendCheckpointStorageAccess`).
    #[serde(default)]
    pub savepoint_directory: Option<String>,
    /// The limits of JobManagerCheckpointStorage.
    #[serde(default)]
    pub memory_storage: MemoryStorageLimits,
    /// `state.storage.fs.memory-threshold`: with files, a task state smaller than this is kept
    /// inline in `_metadata` instead of a file of its own. Flink's default is 20 KiB; here it is
    /// 0 (off) by default, so that every snapshot goes through the simulated disk.
    #[serde(default)]
    pub inline_threshold_bytes: u64,
    /// `state.backend.incremental`: keyed state in the incremental (LSM-like) backend, whose
    /// snapshots upload only what changed into `shared/`. Needs a checkpoint directory.
    #[serde(default)]
    pub incremental: bool,
    /// What happens to checkpoints when the job ends (Flink's `ExternalizedCheckpointRetention`).
    #[serde(default)]
    pub retention: ExternalizedRetention,
    /// `execution.checkpointing.unaligned.enabled`: barriers overtake the input queued before
    /// them, and that in-flight input is persisted with the snapshot as channel state
    /// (FLIP-76). EXACTLY_ONCE only, one checkpoint at a time; savepoints stay aligned.
    #[serde(default)]
    pub unaligned: bool,
    /// `execution.checkpointing.aligned-checkpoint-timeout`: with `unaligned`, a checkpoint
    /// starts aligned and switches to unaligned once its alignment has taken this long at a
    /// task (Flink times it from the global start instead, FLINK-23041); 0 starts unaligned.
    #[serde(default)]
    pub aligned_timeout_ticks: u64,
    /// Not a Flink option: the classic Chandy-Lamport algorithm (Chandy & Lamport,
    /// "Distributed Snapshots", 1985). A task snapshots on the first marker (barrier) it
    /// processes, never blocks a channel, and records what each channel delivers between its
    /// snapshot and that channel's marker.
    /// Markers stay in FIFO order. EXACTLY_ONCE only, one checkpoint at a time.
    #[serde(default)]
    pub chandy_lamport: bool,
    /// `state.backend.changelog.enabled`: keyed state changes go to a changelog in checkpoint
    /// storage as they happen, so a checkpoint uploads only the changes since the last upload
    /// (FLIP-158, the changelog state backend). Needs a checkpoint directory; not with
    /// `incremental`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changelog: Option<ChangelogOptions>,
    /// Checkpointing without barriers: each task snapshots on its own every interval and logs
    /// what it sends, and the JobManager completes recovery lines from the local snapshots
    /// (`crate::recovery_line`). Not a Flink option. EXACTLY_ONCE, heap backend, no channel
    /// state algorithm, no savepoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingProtocol>,
}

/// The protocols that checkpoint without barriers (log-based rollback recovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggingProtocol {
    /// Each task snapshots on its own timer only (uncoordinated checkpointing).
    Uncoordinated,
    /// As uncoordinated, and a task that receives a record sent after a snapshot with a higher
    /// index than its own takes a forced snapshot first (communication-induced checkpointing,
    /// the index-based protocol of Briatico, Ciuffoletti and Simoncini, 1984).
    CommunicationInduced,
}

/// The keyed-state backends a job can choose from, by name (`snapsim list`, `--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateBackend {
    /// Keyed state in the task's own snapshot file (Flink's hashmap backend).
    Heap,
    /// Sorted runs uploaded once into `shared/` (`state.backend.incremental`).
    Incremental,
    /// A changelog of state changes, materialized periodically (FLIP-158).
    Changelog,
}

impl StateBackend {
    /// Every backend, in listing order.
    pub const ALL: [StateBackend; 3] = [
        StateBackend::Heap,
        StateBackend::Incremental,
        StateBackend::Changelog,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StateBackend::Heap => "heap",
            StateBackend::Incremental => "incremental",
            StateBackend::Changelog => "changelog",
        }
    }

    /// One line for `snapsim list`.
    pub fn description(self) -> &'static str {
        match self {
            StateBackend::Heap => "keyed state in each task's snapshot file, whole at every checkpoint (Flink's hashmap backend)",
            StateBackend::Incremental => "keyed state as sorted runs in shared/, each uploaded once, compacted past 3 (state.backend.incremental); needs a checkpoint directory",
            StateBackend::Changelog => "state changes uploaded to dstl/ every 10 ms, the whole state materialized into shared/ every 500 ms; a checkpoint uploads only the changes since the last upload (FLIP-158); needs a checkpoint directory",
        }
    }

    /// The backend called `name`.
    pub fn named(name: &str) -> Option<StateBackend> {
        StateBackend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Makes `config` choose this backend (changelog options it has already are kept).
    pub fn configure(self, config: &mut CheckpointConfig) {
        config.incremental = self == StateBackend::Incremental;
        config.changelog = match self {
            StateBackend::Changelog => Some(config.changelog.unwrap_or_default()),
            _ => None,
        };
    }
}

/// The changelog backend's timers (`dstl.dfs.batch.persist-delay`,
/// `state.backend.changelog.periodic-materialize.interval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangelogOptions {
    /// How long changes wait before they are uploaded as a log segment (Flink: 10 ms).
    pub persist_delay_ticks: u64,
    /// How often the whole keyed state is materialized, so that the log before it can be
    /// dropped. Flink's default is 10 minutes; runs here last seconds, so 500 ms.
    pub materialization_interval_ticks: u64,
    /// Consecutive failed materializations a task survives
    /// (`state.backend.changelog.max-failures-allowed`, 3); one more fails the task.
    pub materialization_failures_allowed: u32,
}

impl Default for ChangelogOptions {
    fn default() -> Self {
        ChangelogOptions {
            persist_delay_ticks: 10,
            materialization_interval_ticks: 500,
            materialization_failures_allowed: 3,
        }
    }
}

/// The limits of JobManagerCheckpointStorage (Flink's `MemCheckpointStreamFactory` and the
/// `JobManagerCheckpointStorage` Javadoc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStorageLimits {
    /// One task's state for one checkpoint (Flink's `maxStateSize`, 5 MiB).
    pub max_state_bytes: u64,
    /// One acknowledgement message (Flink's RPC frame size, 10 MiB).
    pub frame_bytes: u64,
    /// All state of all retained and pending checkpoints together (the JobManager's heap).
    pub budget_bytes: u64,
}

impl Default for MemoryStorageLimits {
    fn default() -> Self {
        MemoryStorageLimits {
            max_state_bytes: 5 * 1024 * 1024,
            frame_bytes: 10 * 1024 * 1024,
            budget_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Where a job's checkpoints live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointStorageKind {
    /// In the JobManager's memory: nothing to restore from by path.
    JobManager(MemoryStorageLimits),
    /// Files under this root (`{directory}/{job}`).
    FileSystem(StoragePath),
}

impl Default for CheckpointConfig {
    /// Flink's defaults (`CheckpointingOptions`).
    fn default() -> Self {
        CheckpointConfig {
            interval_ticks: None,
            mode: CheckpointingMode::ExactlyOnce,
            min_pause_ticks: 0,
            max_concurrent: 1,
            timeout_ticks: CHECKPOINT_TIMEOUT_DEFAULT_TICKS,
            tolerable_failed: 0,
            retained: 1,
            directory: None,
            savepoint_directory: None,
            memory_storage: MemoryStorageLimits::default(),
            incremental: false,
            inline_threshold_bytes: 0,
            retention: ExternalizedRetention::NoExternalized,
            unaligned: false,
            aligned_timeout_ticks: 0,
            chandy_lamport: false,
            changelog: None,
            logging: None,
        }
    }
}

/// A checkpoint or restart option that breaks a rule. The message names the option and the rule.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Flink rejects intervals under 10 ms.
    #[error("checkpoint interval must be at least {min} ms, got {value} ms")]
    IntervalTooShort {
        /// The configured value.
        value: u64,
        /// The lower bound.
        min: u64,
    },
    /// Flink rejects timeouts under 10 ms.
    #[error("checkpoint timeout must be at least {min} ms, got {value} ms")]
    TimeoutTooShort {
        /// The configured value.
        value: u64,
        /// The lower bound.
        min: u64,
    },
    /// At least one checkpoint must be allowed to be pending.
    #[error("max concurrent checkpoints must be between 1 and {max}, got {value}")]
    MaxConcurrentOutOfRange {
        /// The configured value.
        value: u32,
        /// The upper bound.
        max: u32,
    },
    /// The store must keep at least the latest completed checkpoint.
    #[error("number of retained checkpoints must be between 1 and {max}, got {value}")]
    RetainedOutOfRange {
        /// The configured value.
        value: u32,
        /// The upper bound.
        max: u32,
    },
    /// The checkpoint directory is not a valid storage path, or is the HA store's.
    #[error("checkpoint directory '{value}' {rule}")]
    Directory {
        /// The configured value.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The incremental backend uploads files, so it needs FileSystemCheckpointStorage.
    #[error("incremental checkpoints need a checkpoint directory (state.checkpoints.dir)")]
    IncrementalWithoutDirectory,
    /// The changelog is a file in checkpoint storage.
    #[error("the changelog backend needs a checkpoint directory (state.checkpoints.dir)")]
    ChangelogWithoutDirectory,
    /// The changelog wraps the heap backend here; Flink also wraps RocksDB's incremental one.
    #[error("the changelog backend materializes the heap backend's full state; it does not wrap the incremental backend (turn one of them off)")]
    ChangelogWithIncremental,
    /// Checkpointing without barriers rules out an option that needs barriers or other state.
    #[error("checkpointing without barriers ({protocol:?}) cannot be combined with {option}")]
    LoggingWith {
        protocol: LoggingProtocol,
        /// The option that conflicts.
        option: &'static str,
    },
    /// A changelog timer of zero would upload or materialize at every tick.
    #[error("changelog: {option} must be positive")]
    ChangelogTimer { option: &'static str },
    /// A JobManagerCheckpointStorage limit is zero.
    #[error("JobManager checkpoint storage: {option} must be positive")]
    MemoryLimit { option: &'static str },
    /// Channel state is recorded for exactly-once recovery only.
    #[error("{algorithm} checkpoints need checkpointing mode EXACTLY_ONCE, not AT_LEAST_ONCE")]
    ChannelStateWithAtLeastOnce {
        /// `unaligned` or `Chandy-Lamport`.
        algorithm: &'static str,
    },
    /// A task records the channel state of one checkpoint at a time.
    #[error("{algorithm} checkpoints need max concurrent checkpoints 1, got {value}")]
    ChannelStateConcurrent {
        /// `unaligned` or `Chandy-Lamport`.
        algorithm: &'static str,
        /// The configured value.
        value: u32,
    },
    /// Two snapshot algorithms chosen at once.
    #[error("unaligned and Chandy-Lamport checkpoints exclude each other")]
    UnalignedAndChandyLamport,
    /// The aligned-checkpoint timeout only means something with unaligned checkpoints.
    #[error("the aligned-checkpoint timeout ({value} ms) needs unaligned checkpoints enabled")]
    AlignedTimeoutWithoutUnaligned {
        /// The configured value.
        value: u64,
    },
    /// A restart strategy option is out of range.
    #[error("restart strategy {strategy}: {option} {rule}")]
    RestartStrategy {
        /// `fixed-delay` or `exponential-delay`.
        strategy: &'static str,
        /// The option's Flink name.
        option: &'static str,
        /// The rule it breaks, with the value.
        rule: String,
    },
}

impl CheckpointConfig {
    /// Brings options that Flink caps rather than refuses into range, and says what it changed:
    /// a min pause above one year becomes one year (Flink's `CheckpointCoordinator` caps it
    /// "to prevent numeric overflows").
    pub fn cap(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.min_pause_ticks > MIN_PAUSE_MAX_TICKS {
            warnings.push(format!(
                "min pause between checkpoints {} ms is above one year; capped at {MIN_PAUSE_MAX_TICKS} ms",
                self.min_pause_ticks
            ));
            self.min_pause_ticks = MIN_PAUSE_MAX_TICKS;
        }
        assert!(
            self.min_pause_ticks <= MIN_PAUSE_MAX_TICKS,
            "the min pause is capped"
        );
        warnings
    }

    /// Checks every rule Flink applies to these options (`CheckpointCoordinatorConfiguration`,
    /// the `CheckpointCoordinator` constructor). Call before building a job.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(value) = self.interval_ticks {
            if value < CHECKPOINT_TIME_MIN_TICKS {
                return Err(ConfigError::IntervalTooShort {
                    value,
                    min: CHECKPOINT_TIME_MIN_TICKS,
                });
            }
        }
        if self.timeout_ticks < CHECKPOINT_TIME_MIN_TICKS {
            let value = self.timeout_ticks;
            return Err(ConfigError::TimeoutTooShort {
                value,
                min: CHECKPOINT_TIME_MIN_TICKS,
            });
        }
        if self.max_concurrent == 0 || self.max_concurrent > CONCURRENT_CHECKPOINTS_MAX {
            let (value, max) = (self.max_concurrent, CONCURRENT_CHECKPOINTS_MAX);
            return Err(ConfigError::MaxConcurrentOutOfRange { value, max });
        }
        if self.retained == 0 || self.retained > RETAINED_CHECKPOINTS_MAX {
            let (value, max) = (self.retained, RETAINED_CHECKPOINTS_MAX);
            return Err(ConfigError::RetainedOutOfRange { value, max });
        }
        for directory in [&self.directory, &self.savepoint_directory]
            .into_iter()
            .flatten()
        {
            let error = |rule| ConfigError::Directory {
                value: directory.clone(),
                rule,
            };
            if StoragePath::new(directory.clone()).is_err() {
                return Err(error(
                    "is not a storage path (segments separated by '/', none empty, '.' or '..')",
                ));
            }
            if directory.split('/').next() == Some(HA_DIRECTORY) {
                return Err(error("lies in 'ha/', where the HA records are"));
            }
        }
        if self.incremental && self.directory.is_none() {
            return Err(ConfigError::IncrementalWithoutDirectory);
        }
        if let Some(changelog) = &self.changelog {
            if self.directory.is_none() {
                return Err(ConfigError::ChangelogWithoutDirectory);
            }
            if self.incremental {
                return Err(ConfigError::ChangelogWithIncremental);
            }
            for (option, ticks) in [
                ("persist delay", changelog.persist_delay_ticks),
                (
                    "materialization interval",
                    changelog.materialization_interval_ticks,
                ),
            ] {
                if ticks == 0 {
                    return Err(ConfigError::ChangelogTimer { option });
                }
            }
        }
        self.validate_channel_state()?;
        self.validate_logging()?;
        let limits = &self.memory_storage;
        for (option, value) in [
            ("max state size", limits.max_state_bytes),
            ("frame size", limits.frame_bytes),
            ("memory budget", limits.budget_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::MemoryLimit { option });
            }
        }
        Ok(())
    }

    /// The rules of the algorithms that record channel state (Flink's for unaligned
    /// checkpoints: `CheckpointCoordinatorConfiguration`, FLINK-18403).
    fn validate_channel_state(&self) -> Result<(), ConfigError> {
        if self.unaligned && self.chandy_lamport {
            return Err(ConfigError::UnalignedAndChandyLamport);
        }
        if self.aligned_timeout_ticks > 0 && !self.unaligned {
            let value = self.aligned_timeout_ticks;
            return Err(ConfigError::AlignedTimeoutWithoutUnaligned { value });
        }
        let Some(algorithm) = self.channel_state_algorithm() else {
            return Ok(());
        };
        if self.mode == CheckpointingMode::AtLeastOnce {
            return Err(ConfigError::ChannelStateWithAtLeastOnce { algorithm });
        }
        if self.max_concurrent > 1 {
            let value = self.max_concurrent;
            return Err(ConfigError::ChannelStateConcurrent { algorithm, value });
        }
        Ok(())
    }

    /// The rules of checkpointing without barriers: its local snapshots hold the heap
    /// backend's whole state, its exactly-once comes from the recovery line, and its tasks
    /// snapshot every interval.
    fn validate_logging(&self) -> Result<(), ConfigError> {
        let Some(protocol) = self.logging else {
            return Ok(());
        };
        let conflicts = [
            (
                self.mode == CheckpointingMode::AtLeastOnce,
                "AT_LEAST_ONCE mode",
            ),
            (self.unaligned, "unaligned checkpoints"),
            (self.chandy_lamport, "Chandy-Lamport"),
            (self.incremental, "the incremental backend"),
            (self.changelog.is_some(), "the changelog backend"),
            (self.savepoint_directory.is_some(), "savepoints"),
            (
                self.interval_ticks.is_none(),
                "periodic checkpointing off (no interval)",
            ),
        ];
        match conflicts.into_iter().find(|(conflict, _)| *conflict) {
            Some((_, option)) => Err(ConfigError::LoggingWith { protocol, option }),
            None => Ok(()),
        }
    }

    /// The name of the algorithm that records channel state, if the job uses one.
    pub fn channel_state_algorithm(&self) -> Option<&'static str> {
        match (self.unaligned, self.chandy_lamport) {
            (true, _) => Some("unaligned"),
            (false, true) => Some("Chandy-Lamport"),
            (false, false) => None,
        }
    }

    /// The directory of savepoint `id` of job `job`, if savepoints are configured.
    pub fn savepoint_dir(&self, job: &str, id: crate::ids::CheckpointId) -> Option<StoragePath> {
        let directory = self.savepoint_directory.as_ref()?;
        Some(
            StoragePath::new(format!("{directory}/savepoint-{job}-{}", id.0))
                .expect("validated at job build"),
        )
    }

    /// Where the job `job`'s checkpoints live: files under `{directory}/{job}` when a directory
    /// is set (Flink chooses FileSystemCheckpointStorage then), else the JobManager's memory.
    pub fn storage(&self, job: &str) -> CheckpointStorageKind {
        match &self.directory {
            Some(directory) => CheckpointStorageKind::FileSystem(
                StoragePath::new(format!("{directory}/{job}")).expect("validated at job build"),
            ),
            None => CheckpointStorageKind::JobManager(self.memory_storage),
        }
    }

    /// The effective periodic interval: Flink raises it to the min pause when that is larger
    /// (in the `CheckpointCoordinator` constructor).
    pub fn effective_interval_ticks(&self) -> Option<u64> {
        self.interval_ticks
            .map(|interval| interval.max(self.min_pause_ticks))
    }
}

/// An integer ratio, so that no probability or factor is an `f64` (as TigerBeetle's VOPR
/// writes probabilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratio {
    pub numerator: u64,
    /// The denominator, never zero.
    pub denominator: u64,
}

impl Ratio {
    /// `numerator / denominator`.
    pub const fn new(numerator: u64, denominator: u64) -> Ratio {
        assert!(denominator > 0, "a ratio's denominator is never zero");
        Ratio {
            numerator,
            denominator,
        }
    }

    /// `value × self`, rounded down, saturating.
    pub fn apply(self, value: u64) -> u64 {
        let product = u128::from(value) * u128::from(self.numerator) / u128::from(self.denominator);
        u64::try_from(product).unwrap_or(u64::MAX)
    }
}

/// How the JobManager restarts the job after a failure (Flink's `RestartStrategyOptions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartStrategyConfig {
    /// Never restart: the first failure fails the job (Flink's default without checkpointing).
    NoRestart,
    /// Restart after a fixed delay, at most `attempts` times.
    FixedDelay {
        /// Restarts allowed before the job fails.
        attempts: u32,
        /// Delay before each restart.
        delay_ticks: u64,
    },
    /// Restart after a delay that grows by `multiplier` per failure up to `max_backoff_ticks`,
    /// reset to the initial backoff after `reset_threshold_ticks` without failure.
    ExponentialDelay {
        /// The first delay.
        initial_backoff_ticks: u64,
        /// The largest delay.
        max_backoff_ticks: u64,
        /// Growth per failure, at least 1.
        multiplier: Ratio,
        /// Quiet time after which the backoff starts over.
        reset_threshold_ticks: u64,
        /// Spread of each delay, between 0 and 1 (Flink's default is 0.1).
        jitter: Ratio,
        /// Restarts allowed before the job fails.
        attempts: u32,
    },
}

impl Default for RestartStrategyConfig {
    /// Flink's default with checkpointing on: exponential delay with the 1.20 defaults
    /// (1 s initial, 1 min max, ×1.5, reset after 1 h, jitter 0.1). Flink's attempt bound is
    /// unlimited; ours is [`RESTART_ATTEMPTS_MAX`] so that every run ends.
    fn default() -> Self {
        RestartStrategyConfig::ExponentialDelay {
            initial_backoff_ticks: 1_000,
            max_backoff_ticks: 60_000,
            multiplier: Ratio::new(3, 2),
            reset_threshold_ticks: 3_600_000,
            jitter: Ratio::new(1, 10),
            attempts: RESTART_ATTEMPTS_MAX,
        }
    }
}

impl RestartStrategyConfig {
    /// Checks the strategy's options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let error = |strategy, option, rule: String| ConfigError::RestartStrategy {
            strategy,
            option,
            rule,
        };
        match *self {
            RestartStrategyConfig::NoRestart => Ok(()),
            RestartStrategyConfig::FixedDelay { attempts, .. } => {
                if attempts > RESTART_ATTEMPTS_MAX {
                    let rule = format!("must be at most {RESTART_ATTEMPTS_MAX}, got {attempts}");
                    return Err(error("fixed-delay", "attempts", rule));
                }
                Ok(())
            }
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff_ticks,
                max_backoff_ticks,
                multiplier,
                jitter,
                attempts,
                ..
            } => {
                let name = "exponential-delay";
                if initial_backoff_ticks == 0 {
                    return Err(error(
                        name,
                        "initial-backoff",
                        "must be positive, got 0".into(),
                    ));
                }
                if max_backoff_ticks < initial_backoff_ticks {
                    let rule = format!(
                        "must be at least initial-backoff ({initial_backoff_ticks} ms), got {max_backoff_ticks} ms"
                    );
                    return Err(error(name, "max-backoff", rule));
                }
                if multiplier.numerator < multiplier.denominator {
                    let rule = format!(
                        "must be at least 1, got {}/{}",
                        multiplier.numerator, multiplier.denominator
                    );
                    return Err(error(name, "backoff-multiplier", rule));
                }
                if jitter.numerator > jitter.denominator {
                    let rule = format!(
                        "must be between 0 and 1, got {}/{}",
                        jitter.numerator, jitter.denominator
                    );
                    return Err(error(name, "jitter-factor", rule));
                }
                if attempts > RESTART_ATTEMPTS_MAX {
                    let rule = format!("must be at most {RESTART_ATTEMPTS_MAX}, got {attempts}");
                    return Err(error(name, "attempts", rule));
                }
                Ok(())
            }
        }
    }
}

/// Decides whether and when to restart after each failure. Pure: time is an input.
///
/// Invariant: `restarts <= ` the strategy's attempt bound.
#[derive(Clone, Debug)]
pub struct RestartStrategy {
    config: RestartStrategyConfig,
    restarts: u32,
    backoff_ticks: u64,
    last_failure: Option<Tick>,
}

/// What the strategy decided for one failure.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart the job at this time.
    RestartAt(Tick),
    /// The attempts are used up (or restarts are off): the job fails for good.
    GiveUp,
}

impl RestartStrategy {
    /// A strategy in its initial state. The config must be valid.
    pub fn new(config: RestartStrategyConfig) -> RestartStrategy {
        assert!(
            config.validate().is_ok(),
            "restart strategy validated at job build"
        );
        let backoff_ticks = match config {
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff_ticks,
                ..
            } => initial_backoff_ticks,
            _ => 0,
        };
        RestartStrategy {
            config,
            restarts: 0,
            backoff_ticks,
            last_failure: None,
        }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Tick) -> RestartDecision {
        let decision = match self.config {
            RestartStrategyConfig::NoRestart => RestartDecision::GiveUp,
            RestartStrategyConfig::FixedDelay {
                attempts,
                delay_ticks,
            } => {
                if self.restarts >= attempts {
                    RestartDecision::GiveUp
                } else {
                    RestartDecision::RestartAt(now.after(delay_ticks))
                }
            }
            RestartStrategyConfig::ExponentialDelay {
                initial_backoff_ticks,
                max_backoff_ticks,
                multiplier,
                reset_threshold_ticks,
                jitter,
                attempts,
            } => {
                if let Some(last) = self.last_failure {
                    if now.since(last) >= reset_threshold_ticks {
                        self.backoff_ticks = initial_backoff_ticks;
                    } else {
                        self.backoff_ticks =
                            multiplier.apply(self.backoff_ticks).min(max_backoff_ticks);
                    }
                }
                if self.restarts >= attempts {
                    RestartDecision::GiveUp
                } else {
                    let delay = jittered(self.backoff_ticks, jitter, self.restarts);
                    RestartDecision::RestartAt(now.after(delay))
                }
            }
        };
        self.last_failure = Some(now);
        if let RestartDecision::RestartAt(at) = decision {
            self.restarts += 1;
            assert!(at >= now, "a restart is never scheduled in the past");
        }
        decision
    }
}

/// Spreads `delay` by up to ±`jitter`. The engine takes no randomness (all of it comes from the
/// simulation's seed), so the spread is a fixed mix of the restart count: deterministic, yet
/// not the same every time.
fn jittered(delay: u64, jitter: Ratio, restarts: u32) -> u64 {
    let spread = jitter.apply(delay);
    if spread == 0 {
        return delay;
    }
    let mut mix = u64::from(restarts).wrapping_add(0x9e37_79b9_7f4a_7c15);
    mix = (mix ^ (mix >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mix = (mix ^ (mix >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mix ^= mix >> 31;
    let offset = mix % (2 * spread + 1);
    (delay - spread) + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(config: CheckpointConfig, expected: Result<(), &str>) {
        let actual = config.validate().map_err(|error| error.to_string());
        assert_eq!(actual, expected.map_err(str::to_string));
    }

    #[test]
    fn defaults_are_flinks_and_valid() {
        let config = CheckpointConfig::default();
        assert_eq!(
            config.interval_ticks, None,
            "no interval means periodic checkpointing is off"
        );
        assert_eq!(config.mode, CheckpointingMode::ExactlyOnce);
        assert_eq!(config.timeout_ticks, 600_000);
        assert_eq!(config.max_concurrent, 1);
        assert_eq!(
            (
                config.min_pause_ticks,
                config.tolerable_failed,
                config.retained
            ),
            (0, 0, 1)
        );
        check(config, Ok(()));
    }

    #[test]
    fn channel_state_algorithms_need_exactly_once_and_one_checkpoint_at_a_time() {
        let unaligned = CheckpointConfig {
            unaligned: true,
            ..CheckpointConfig::default()
        };
        check(unaligned.clone(), Ok(()));
        check(
            CheckpointConfig {
                mode: CheckpointingMode::AtLeastOnce,
                ..unaligned.clone()
            },
            Err("unaligned checkpoints need checkpointing mode EXACTLY_ONCE, not AT_LEAST_ONCE"),
        );
        check(
            CheckpointConfig {
                max_concurrent: 2,
                chandy_lamport: true,
                ..CheckpointConfig::default()
            },
            Err("Chandy-Lamport checkpoints need max concurrent checkpoints 1, got 2"),
        );
        check(
            CheckpointConfig {
                chandy_lamport: true,
                ..unaligned
            },
            Err("unaligned and Chandy-Lamport checkpoints exclude each other"),
        );
        check(
            CheckpointConfig {
                aligned_timeout_ticks: 30,
                ..CheckpointConfig::default()
            },
            Err("the aligned-checkpoint timeout (30 ms) needs unaligned checkpoints enabled"),
        );
    }

    #[test]
    fn each_rule_names_its_option() {
        let base = CheckpointConfig {
            interval_ticks: Some(100),
            ..CheckpointConfig::default()
        };
        check(
            CheckpointConfig {
                interval_ticks: Some(9),
                ..base.clone()
            },
            Err("checkpoint interval must be at least 10 ms, got 9 ms"),
        );
        check(
            CheckpointConfig {
                timeout_ticks: 5,
                ..base.clone()
            },
            Err("checkpoint timeout must be at least 10 ms, got 5 ms"),
        );
        check(
            CheckpointConfig {
                max_concurrent: 0,
                ..base.clone()
            },
            Err("max concurrent checkpoints must be between 1 and 64, got 0"),
        );
        check(
            CheckpointConfig {
                retained: 0,
                ..base.clone()
            },
            Err("number of retained checkpoints must be between 1 and 1024, got 0"),
        );
        check(
            CheckpointConfig {
                directory: Some("ckpt/../x".to_string()),
                ..base.clone()
            },
            Err("checkpoint directory 'ckpt/../x' is not a storage path (segments separated by '/', none empty, '.' or '..')"),
        );
        check(
            CheckpointConfig {
                directory: Some("ha/mine".to_string()),
                ..base.clone()
            },
            Err("checkpoint directory 'ha/mine' lies in 'ha/', where the HA records are"),
        );
        check(
            CheckpointConfig {
                memory_storage: MemoryStorageLimits {
                    frame_bytes: 0,
                    ..MemoryStorageLimits::default()
                },
                ..base.clone()
            },
            Err("JobManager checkpoint storage: frame size must be positive"),
        );
    }

    #[test]
    fn a_min_pause_above_one_year_is_capped_with_a_warning() {
        // Flink's `CheckpointCoordinator` caps the pause at one year instead of refusing the
        // job; a pause of exactly one year is left alone.
        let mut config = CheckpointConfig {
            min_pause_ticks: MIN_PAUSE_MAX_TICKS + 1,
            ..CheckpointConfig::default()
        };
        assert_eq!(
            config.cap(),
            ["min pause between checkpoints 31536000001 ms is above one year; capped at 31536000000 ms"]
        );
        assert_eq!(config.min_pause_ticks, MIN_PAUSE_MAX_TICKS);
        assert!(config.validate().is_ok());
        assert!(config.cap().is_empty(), "a pause of one year is kept");
    }

    #[test]
    fn min_pause_above_interval_becomes_the_interval() {
        let config = CheckpointConfig {
            interval_ticks: Some(100),
            min_pause_ticks: 250,
            ..CheckpointConfig::default()
        };
        assert_eq!(config.effective_interval_ticks(), Some(250));
    }

    #[test]
    fn restart_options_are_validated() {
        let bad = RestartStrategyConfig::ExponentialDelay {
            initial_backoff_ticks: 100,
            max_backoff_ticks: 50,
            multiplier: Ratio::new(3, 2),
            reset_threshold_ticks: 1000,
            jitter: Ratio::new(0, 1),
            attempts: 3,
        };
        assert_eq!(
            bad.validate().map_err(|e| e.to_string()),
            Err("restart strategy exponential-delay: max-backoff must be at least initial-backoff (100 ms), got 50 ms".into())
        );
    }

    #[test]
    fn fixed_delay_gives_up_after_its_attempts() {
        let mut strategy = RestartStrategy::new(RestartStrategyConfig::FixedDelay {
            attempts: 2,
            delay_ticks: 10,
        });
        assert_eq!(
            strategy.on_failure(Tick(100)),
            RestartDecision::RestartAt(Tick(110))
        );
        assert_eq!(
            strategy.on_failure(Tick(200)),
            RestartDecision::RestartAt(Tick(210))
        );
        assert_eq!(strategy.on_failure(Tick(300)), RestartDecision::GiveUp);
    }

    #[test]
    fn exponential_delay_grows_caps_and_resets() {
        let mut strategy = RestartStrategy::new(RestartStrategyConfig::ExponentialDelay {
            initial_backoff_ticks: 100,
            max_backoff_ticks: 300,
            multiplier: Ratio::new(2, 1),
            reset_threshold_ticks: 10_000,
            jitter: Ratio::new(0, 1),
            attempts: 10,
        });
        let delays: Vec<u64> = [0, 1_000, 2_000, 3_000, 20_000]
            .into_iter()
            .map(|now| match strategy.on_failure(Tick(now)) {
                RestartDecision::RestartAt(at) => at.since(Tick(now)),
                RestartDecision::GiveUp => panic!("attempts left"),
            })
            .collect();
        assert_eq!(delays, vec![100, 200, 300, 300, 100]);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        for restarts in 0..100 {
            let delay = jittered(1_000, Ratio::new(1, 10), restarts);
            assert!((900..=1_100).contains(&delay), "{delay} outside 1000 ± 10%");
        }
    }
}

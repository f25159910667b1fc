//! The CheckMate comparison (Siachamis, Christodoulou, Psarakis, Katsifodimos and Karras,
//! "CheckMate: Evaluating Checkpointing Protocols for Streaming Dataflows", ICDE 2024):
//! coordinated (aligned barriers), uncoordinated and communication-induced checkpointing side
//! by side under uniform and skewed keys, with and without a TaskManager crash, and the study's
//! claims checked against what the engine measures.
//!
//! The study measures throughput and end-to-end latency on NexMark queries over Kafka; here
//! the job runs in virtual time and its output is exactly-once (2PC sinks commit what a
//! checkpoint or recovery line holds), so the figures are the engine's own: the time until
//! every task processed all its input (throughput), the delay from pre-commit to commit (how
//! long output waits: latency), snapshots and control messages per checkpoint, the sender
//! logs a line holds, the snapshots a line rolls past (the domino effect), and at a failover
//! the records replayed and the work lost.

use snapsim_reports::campaign::{Agreement, CellSummary, CellTable, Experiment, Figures};
use snapsim_reports::percentile;
use std::ops::Range;

/// The protocols compared: coordinated (Flink's aligned barriers), uncoordinated,
/// communication-induced.
pub const ALGORITHMS: [&str; 3] = ["aligned", "uncoordinated", "communication-induced"];
/// The workloads: uniform keys, and skewed keys (half the records on one key, a slow sum).
pub const SCENARIOS: [&str; 2] = ["keyed-sum", "hot-key"];
/// Without faults (overhead, throughput, latency) and with a TaskManager crash (recovery).
pub const FAULTS: [&str; 2] = ["none", "tm-crash"];

/// The table of the comparison, from the matrix's cells.
pub fn table(seeds: &Range<u64>, cells: Vec<CellSummary>) -> CellTable {
    CellTable {
        title: "Checkpointing protocols side by side (CheckMate)".into(),
        about: format!(
            "Coordinated (aligned barriers), uncoordinated and communication-induced \
             checkpointing on the same jobs and seeds ({}..{}): keyed-sum has uniform keys, \
             hot-key half the records on one key and a slow sum (skew). Per run: snapshots and \
             control messages (barriers delivered and acknowledgements; local snapshots \
             reported) per completed checkpoint or recovery line, forced snapshots, the time until \
             every task processed all its input. Per checkpoint or line: its files (each \
             task's snapshot and _metadata) and the sender logs its snapshots hold; per line \
             the local snapshots it rolled past. Per committed transaction: pre-commit to commit. Per \
             failover: the time back to the restored snapshot (work lost) and to running \
             again. Checkpoint duration is trigger to completion, or for a line its oldest \
             member to completion. Each (algorithm, faults) pair is a sweep in cells/.",
            seeds.start, seeds.end
        ),
        slug: "protocols".into(),
        cells,
        figures: Figures::Protocols,
    }
}

/// A protocol's figures on one workload under one fault profile.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    /// The cell ran and committed, processed all input and, without barriers, completed
    /// lines: a figure left at 0 otherwise would be no measurement.
    measured: bool,
    commit_delay: u64,
    commit_delay_p99: u64,
    job: u64,
    forced: u64,
    rolled_back_p99: u64,
    log_bytes: u64,
    work_lost: u64,
    replayed: u64,
}

fn figures(table: &CellTable, algorithm: &str, scenario: &str, faults: &str) -> Measured {
    let Some(cell) = (table.cells.iter())
        .find(|c| c.algorithm == algorithm && c.scenario == scenario && c.faults == faults)
    else {
        return Measured::default();
    };
    let p = |values: &Vec<u64>, rank| percentile(&mut values.clone(), rank).unwrap_or(0);
    // The coordinated protocol completes checkpoints, the others recovery lines.
    let lines = algorithm == ALGORITHMS[0] || !cell.rolled_back.is_empty();
    Measured {
        measured: !cell.commit_delay_ms.is_empty() && !cell.input_done_ms.is_empty() && lines,
        commit_delay: p(&cell.commit_delay_ms, 50),
        commit_delay_p99: p(&cell.commit_delay_ms, 99),
        job: p(&cell.input_done_ms, 50),
        forced: p(&cell.forced_snapshots, 50),
        rolled_back_p99: p(&cell.rolled_back, 99),
        log_bytes: p(&cell.log_bytes, 50),
        work_lost: p(&cell.work_lost_ms, 50),
        replayed: p(&cell.replayed_records, 50),
    }
}

/// The study's claims, each measured on the table.
pub fn experiments(table: &CellTable) -> Vec<Experiment> {
    let failed = table.cells.iter().any(|c| c.passed != c.runs);
    let f = |algorithm, scenario, faults| figures(table, algorithm, scenario, faults);
    let [cor, unc, cic] = ALGORITHMS.map(|a| f(a, "keyed-sum", "none"));
    let [cor_skew, unc_skew, cic_skew] = ALGORITHMS.map(|a| f(a, "hot-key", "none"));
    let [cor_crash, unc_crash, _] = ALGORITHMS.map(|a| f(a, "keyed-sum", "tm-crash"));
    let all_measured = [
        cor, unc, cic, cor_skew, unc_skew, cic_skew, cor_crash, unc_crash,
    ]
    .iter()
    .all(|m| m.measured);
    let judged = |holds: bool| match (failed, all_measured && holds) {
        (false, true) => Agreement::Agrees,
        _ => Agreement::Unexpected,
    };
    let delay = |name: &str, x: Measured| {
        format!(
            "{name} {} / {} ms (all input processed at {} ms)",
            x.commit_delay, x.commit_delay_p99, x.job
        )
    };
    // Throughput alike: within a twentieth.
    let no_slower = |x: Measured, than: Measured| x.job * 20 <= than.job * 21;
    vec![
        Experiment {
            experiment: "Uniform keys (keyed-sum, no faults): commit delay p50 / p99 and the time until all input is processed, coordinated vs. uncoordinated and communication-induced".into(),
            expected: "coordinated best under uniform load: its output waits least (p50) and it processes no slower (CheckMate, ICDE 2024)".into(),
            measured: [delay("coordinated", cor), delay("uncoordinated", unc), delay("communication-induced", cic)].join("; "),
            agreement: judged(
                cor.commit_delay <= unc.commit_delay.min(cic.commit_delay)
                    && no_slower(cor, unc)
                    && no_slower(cor, cic),
            ),
        },
        Experiment {
            experiment: "Skewed keys (hot-key, no faults): the same figures".into(),
            expected: "uncoordinated competitive with coordinated, and better under skew: no slower, and its output waits less in the tail (p99), where alignment behind the hot key delays coordinated checkpoints (CheckMate, ICDE 2024)".into(),
            measured: [delay("coordinated", cor_skew), delay("uncoordinated", unc_skew), delay("communication-induced", cic_skew)].join("; "),
            agreement: judged(
                unc_skew.commit_delay_p99 < cor_skew.commit_delay_p99 && no_slower(unc_skew, cor_skew),
            ),
        },
        Experiment {
            experiment: "Communication-induced vs. uncoordinated (keyed-sum and hot-key, no faults): forced snapshots per run p50, local snapshots a line rolled past p99".into(),
            expected: "communication-induced takes forced snapshots (more checkpointing work) and so bounds the domino effect: its lines roll back no further than uncoordinated ones (CheckMate; Briatico, Ciuffoletti and Simoncini 1984)".into(),
            measured: format!(
                "uniform: forced {} vs. {}, rolled past p99 {} vs. {}; skewed: forced {} vs. {}, rolled past p99 {} vs. {}",
                cic.forced, unc.forced, cic.rolled_back_p99, unc.rolled_back_p99,
                cic_skew.forced, unc_skew.forced, cic_skew.rolled_back_p99, unc_skew.rolled_back_p99
            ),
            agreement: judged(
                cic.forced > 0
                    && cic_skew.forced > 0
                    && cic.rolled_back_p99 <= unc.rolled_back_p99
                    && cic_skew.rolled_back_p99 <= unc_skew.rolled_back_p99,
            ),
        },
        Experiment {
            experiment: "Uncoordinated checkpointing's price (keyed-sum): sender logs per line p50 without faults; at a TaskManager crash, records replayed per run p50 and work lost p50".into(),
            expected: "uncoordinated checkpointing logs messages (coordinated logs none) and its restore replays logged records besides the sources' (Elnozahy et al. 2002, the survey of rollback-recovery protocols)".into(),
            measured: format!(
                "logs {} bytes (coordinated {}); replayed {} records vs. coordinated {}; work lost {} ms vs. coordinated {} ms",
                unc.log_bytes, cor.log_bytes, unc_crash.replayed, cor_crash.replayed, unc_crash.work_lost, cor_crash.work_lost
            ),
            agreement: judged(unc.log_bytes > 0 && cor.log_bytes == 0 && unc_crash.replayed > 0),
        },
    ]
}

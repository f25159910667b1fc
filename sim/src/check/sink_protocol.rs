//! The sink protocol: what a two-phase-commit sink asks of the external system.

use super::witness::{Finding, History};
use super::{at_end, summarize, summarize_findings, Checker, JudgedRun, Judgement};
use super::{Property, Violation};
use snapsim_core::sink::SinkAnomaly;

/// Every request a correct sink never makes, as a message. The sink system applies such a
/// request as a real one would (records written into an ended transaction, or committed after
/// their abort, are lost; a commit of an unknown transaction does nothing), so the loss may
/// also show as missing output; this names the request that caused it.
pub fn sink_protocol(anomalies: &[SinkAnomaly]) -> Vec<Violation> {
    let messages = anomalies.iter().map(message);
    summarize(Property::SinkProtocol, messages.collect(), None)
}

fn message(anomaly: &SinkAnomaly) -> String {
    match anomaly {
        SinkAnomaly::WriteAfterEnd {
            transaction,
            records,
        } => format!(
            "{records} records written into transaction {transaction} after it was committed or aborted (they are lost)"
        ),
        SinkAnomaly::CommitAfterAbort { transaction } => {
            format!("transaction {transaction} committed after it was aborted (its records are lost)")
        }
        SinkAnomaly::CommitUnknown { transaction } => {
            format!("transaction {transaction} committed, but no sink ever wrote or pre-committed it")
        }
    }
}

/// The sink protocol as the run's checker judges it: a write into an ended transaction with
/// the transaction's pre-commit and commit as its witness.
fn sink_protocol_witnessed(run: &JudgedRun) -> Vec<Violation> {
    if run.anomalies.is_empty() {
        return Vec::new();
    }
    let history = History::of(run.own_trace(), run.sink_log);
    let findings = (run.anomalies.iter())
        .map(|anomaly| {
            let (subject, witness) = match anomaly {
                SinkAnomaly::WriteAfterEnd {
                    transaction,
                    records,
                } => (
                    transaction.to_string(),
                    history.write_after_end(*transaction, *records),
                ),
                SinkAnomaly::CommitAfterAbort { transaction }
                | SinkAnomaly::CommitUnknown { transaction } => (transaction.to_string(), None),
            };
            Finding {
                message: message(anomaly),
                subject,
                witness,
            }
        })
        .collect();
    summarize_findings(Property::SinkProtocol, findings, None)
}

/// Requests a correct sink never makes.
pub struct SinkProtocol;

impl Checker for SinkProtocol {
    fn property(&self) -> Property {
        Property::SinkProtocol
    }
    fn description(&self) -> &str {
        "no sink writes into or commits a transaction that ended, or commits one the sink system never saw"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| sink_protocol_witnessed(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapsim_core::ids::{Attempt, TaskId};
    use snapsim_core::sink::TransactionId;

    #[test]
    fn every_request_a_correct_sink_never_makes_is_named() {
        assert_eq!(sink_protocol(&[]), Vec::new());
        let transaction = TransactionId {
            sink: TaskId(4),
            attempt: Attempt(2),
            sequence: 7,
        };
        let violations = sink_protocol(&[
            SinkAnomaly::WriteAfterEnd {
                transaction,
                records: 3,
            },
            SinkAnomaly::CommitAfterAbort { transaction },
            SinkAnomaly::CommitUnknown { transaction },
        ]);
        let text: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            text,
            [
                "[sink-protocol] 3 records written into transaction txn task-4/attempt-2/#7 after it was committed or aborted (they are lost)",
                "[sink-protocol] transaction txn task-4/attempt-2/#7 committed after it was aborted (its records are lost)",
                "[sink-protocol] transaction txn task-4/attempt-2/#7 committed, but no sink ever wrote or pre-committed it",
            ]
        );
    }
}

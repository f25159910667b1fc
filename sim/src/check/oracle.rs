//! The failure-free oracle cross-checked by the sequential reference model.

use super::{at_end, Checker, JudgedRun, Judgement};
use super::{
    at_least_once, exactly_once, final_state, outputs, state_consistency, Property, Violation,
};
use crate::model::ReferenceModel;
use snapsim_core::job::ExecutionPlan;
use snapsim_core::sink::CommittedRecord;
/// The failure-free oracle against the sequential reference model: the same effects, the same
/// final values, and each of its values consistent. A violation here is a bug in the engine
/// that needs no fault at all, or in the model.
///
/// `replays` says the oracle reads input again by design (an at-least-once job resumed from an
/// earlier job's snapshot commits what that job committed after it once more, and its state
/// may count some inputs twice, as at-least-once allows): then each effect is judged at least
/// once, and nothing else.
pub fn oracle_agrees_with_model(
    oracle: &[CommittedRecord],
    plan: &ExecutionPlan,
    model: &ReferenceModel,
    replays: bool,
) -> Vec<Violation> {
    let outputs = outputs(oracle, plan);
    let mut violations = if replays {
        at_least_once(&outputs, model.outputs()).0
    } else {
        let mut violations = exactly_once(&outputs, model.outputs());
        violations.extend(final_state(&outputs, model.outputs(), model));
        violations.extend(state_consistency(oracle, plan, model, &[]));
        violations
    };
    for violation in &mut violations {
        violation.message = format!(
            "the failure-free run disagrees with the reference model ({}): {}",
            violation.property, violation.message
        );
        violation.property = Property::Oracle;
    }
    violations
}

/// The failure-free oracle agrees with the sequential reference model.
pub struct OracleAgreesWithModel;

impl Checker for OracleAgreesWithModel {
    fn property(&self) -> Property {
        Property::Oracle
    }
    fn description(&self) -> &str {
        "the failure-free oracle (the same job without faults) commits what the sequential reference model computes"
    }
    fn judge<'r>(&self, run: &'r JudgedRun<'r>) -> Box<dyn Judgement<'r> + 'r> {
        at_end(|| oracle_agrees_with_model(run.oracle, run.clean, run.model, run.replays))
    }
}

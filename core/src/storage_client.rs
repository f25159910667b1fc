//! The caller's side of storage requests: ids, purposes and timeouts.
//!
//! The storage node may crash with a request, so every request has a deadline; an unanswered
//! one fails with [`StorageError::TimedOut`] and its late answer is ignored. Request ids are
//! unique across restarts of the caller (they start at the start time), so an answer to a
//! request of a crashed incarnation can never be mistaken for one of the new incarnation.

use crate::ids::Tick;
use crate::messages::{Address, Message, Outbox};
use crate::storage::{StorageError, StorageOp, StorageReply, StorageRequest, StorageResponse};
use crate::trace::EngineEvent;
use std::collections::BTreeMap;

/// Requests one incarnation may send; ids of the next incarnation start above.
const REQUESTS_PER_TICK_MAX: u64 = 1 << 20;

#[derive(Debug)]
struct Pending<P> {
    purpose: P,
    deadline: Tick,
    operation: String,
}

/// The requests a node has in flight to the storage node, each with what it is for (`P`).
#[derive(Debug)]
pub struct StorageClient<P> {
    pending: BTreeMap<u64, Pending<P>>,
    next_request: u64,
    timeout_ticks: u64,
}

impl<P> StorageClient<P> {
    /// A client whose requests time out after `timeout_ticks`.
    pub fn new(timeout_ticks: u64) -> StorageClient<P> {
        assert!(timeout_ticks > 0, "a storage timeout is positive");
        StorageClient {
            pending: BTreeMap::new(),
            next_request: 0,
            timeout_ticks,
        }
    }

    /// The node (re)started at `now`: nothing is pending, and new ids cannot collide with the
    /// ids of an earlier incarnation whose answers may still arrive.
    pub fn start(&mut self, now: Tick) {
        self.pending.clear();
        let floor = now
            .0
            .checked_mul(REQUESTS_PER_TICK_MAX)
            .expect("ids fit u64");
        self.next_request = self.next_request.max(floor);
    }

    /// Forgets every request: their answers will be ignored.
    pub fn forget_all(&mut self) {
        self.pending.clear();
    }

    /// Sends `op` to the storage node.
    pub fn send(&mut self, now: Tick, purpose: P, op: StorageOp, out: &mut Outbox) {
        let request = self.next_request;
        self.next_request += 1;
        let deadline = now.after(self.timeout_ticks);
        let pending = Pending {
            purpose,
            deadline,
            operation: op.to_string(),
        };
        self.pending.insert(request, pending);
        out.send(
            Address::Storage,
            Message::Storage(StorageRequest {
                request,
                op,
                deadline: Some(deadline),
            }),
        );
    }

    /// The purpose and result of an answer; `None` for an answer nobody waits for any more.
    pub fn answer(
        &mut self,
        response: StorageResponse,
    ) -> Option<(P, Result<StorageReply, StorageError>)> {
        let pending = self.pending.remove(&response.request)?;
        Some((pending.purpose, response.result))
    }

    /// Fails the oldest request whose deadline passed, tracing it. One at a time: handling a
    /// failure may forget the other requests (a JobManager starting over), whose late
    /// failures must then not be handled.
    pub fn expire_next(&mut self, now: Tick, out: &mut Outbox) -> Option<(P, StorageError)> {
        let request = self
            .pending
            .iter()
            .find(|(_, pending)| pending.deadline <= now)
            .map(|(&request, _)| request)?;
        let pending = self.pending.remove(&request).expect("found above");
        crate::probes::hit(crate::probes::Probe::StorageRequestTimedOut);
        out.trace(EngineEvent::StorageTimedOut {
            operation: pending.operation.clone(),
        });
        let error = StorageError::TimedOut {
            operation: pending.operation,
            ticks: self.timeout_ticks,
        };
        Some((pending.purpose, error))
    }

    /// The earliest deadline of a pending request.
    pub fn next_deadline(&self) -> Option<Tick> {
        self.pending.values().map(|pending| pending.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoragePath;

    fn read(path: &str) -> StorageOp {
        StorageOp::Read {
            path: StoragePath::new(path).expect("valid"),
        }
    }

    fn sent_ids(out: &Outbox) -> Vec<u64> {
        out.messages
            .iter()
            .map(|(_, message)| match message {
                Message::Storage(request) => request.request,
                other => panic!("not a storage request: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_unanswered_request_times_out_once_and_its_late_answer_is_ignored() {
        let mut client = StorageClient::new(100);
        client.start(Tick(0));
        let mut out = Outbox::default();
        client.send(Tick(5), "restore", read("a"), &mut out);
        assert_eq!(client.next_deadline(), Some(Tick(105)));
        assert!(client.expire_next(Tick(104), &mut out).is_none());
        let expired = client.expire_next(Tick(105), &mut out);
        assert!(
            matches!(
                expired,
                Some(("restore", StorageError::TimedOut { ticks: 100, .. }))
            ),
            "{expired:?}"
        );
        assert!(
            client.expire_next(Tick(500), &mut out).is_none(),
            "expires once"
        );
        let late = StorageResponse {
            request: sent_ids(&out)[0],
            result: Ok(StorageReply::Data(vec![1])),
        };
        assert!(client.answer(late).is_none());
    }

    #[test]
    fn a_restarted_client_never_reuses_an_id_of_its_earlier_life() {
        let mut client = StorageClient::new(100);
        client.start(Tick(0));
        let mut before = Outbox::default();
        client.send(Tick(0), (), read("a"), &mut before);
        client.start(Tick(1));
        let mut after = Outbox::default();
        client.send(Tick(1), (), read("a"), &mut after);
        let (old, new) = (sent_ids(&before)[0], sent_ids(&after)[0]);
        assert_ne!(old, new);
        let stale = StorageResponse {
            request: old,
            result: Ok(StorageReply::Data(Vec::new())),
        };
        assert!(client.answer(stale).is_none());
    }
}

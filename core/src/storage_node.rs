//! The checkpoint storage node: executes storage requests in arrival order.

use crate::ids::Tick;
use crate::messages::{Address, Message, Node, Outbox};
use crate::storage::{CheckpointStorage, StorageResponse};

/// A node serving a [`CheckpointStorage`]. Its storage is durable: a restart keeps it.
#[derive(Debug, Default)]
pub struct StorageNode<S> {
    /// The storage served.
    pub storage: S,
}

impl<S: CheckpointStorage> Node for StorageNode<S> {
    fn on_start(&mut self, _now: Tick, _out: &mut Outbox) {}

    fn on_message(&mut self, _now: Tick, from: Address, message: Message, out: &mut Outbox) {
        let Message::Storage(request) = message else {
            unreachable!("the storage node only serves storage requests, got {message:?}")
        };
        let result = self.storage.execute(request.op);
        out.send(
            from,
            Message::StorageResult(StorageResponse {
                request: request.request,
                result,
            }),
        );
    }

    fn on_tick(&mut self, _now: Tick, _out: &mut Outbox) {}

    fn next_deadline(&self) -> Option<Tick> {
        None
    }
}

//! The external sink system as a node: it applies sink requests in arrival order.

use crate::ids::Tick;
use crate::messages::{Address, Message, Node, Outbox};
use crate::sink::SinkSystem;

impl Node for SinkSystem {
    /// The sink system is durable: a restart keeps every transaction.
    fn on_start(&mut self, _now: Tick, _out: &mut Outbox) {}

    fn on_message(&mut self, now: Tick, from: Address, message: Message, out: &mut Outbox) {
        if let Message::Sink(request) = message {
            if let Some(reply) = self.apply(now, request) {
                out.send(from, Message::SinkResult(reply));
            }
        }
    }

    fn on_tick(&mut self, _now: Tick, _out: &mut Outbox) {}

    fn next_deadline(&self) -> Option<Tick> {
        None
    }
}

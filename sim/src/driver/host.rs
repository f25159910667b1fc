//! The node host, one for both drivers: it hands a role's state machine its inputs and keeps
//! the rule for its timers.

use snapsim_core::ids::Tick;
use snapsim_core::messages::{Address, Message, Node, Outbox};
use std::ops::{Deref, DerefMut};

/// One role of the cluster (JobManager, TaskManager, sink system) with its timer rule: a node
/// is ticked at most once per tick, so a deadline it cannot act on yet (a restart waiting for
/// TaskManagers) does not spin the driver at one instant. Which comes first at an instant, a
/// due tick or a waiting message, is the driver's choice (the madsim nodes tick first, so a
/// stream of messages never starves the timers).
pub struct NodeHost<N: ?Sized> {
    /// When the node was last ticked.
    ticked_at: Option<Tick>,
    node: N,
}

impl<N> NodeHost<N> {
    pub fn new(node: N) -> NodeHost<N> {
        NodeHost {
            ticked_at: None,
            node,
        }
    }
}

impl<N: Node + ?Sized> NodeHost<N> {
    /// The node (re)starts with empty volatile state.
    pub fn start(&mut self, now: Tick) -> Outbox {
        let mut out = Outbox::default();
        self.node.on_start(now, &mut out);
        out
    }

    pub fn deliver(&mut self, now: Tick, from: Address, message: Message) -> Outbox {
        let mut out = Outbox::default();
        self.node.on_message(now, from, message, &mut out);
        out
    }

    /// Whether the node is to be ticked at `now`.
    pub fn is_due(&self, now: Tick) -> bool {
        (self.node.next_deadline()).is_some_and(|at| at <= now && self.ticked_at != Some(now))
    }

    /// When the node is to be ticked next, seen at `now`: its deadline, or the next tick once
    /// it was ticked at `now` already; `None` without a deadline.
    pub fn next_tick(&self, now: Tick) -> Option<Tick> {
        let deadline = self.node.next_deadline()?;
        Some(if self.ticked_at == Some(now) {
            deadline.max(now.after(1))
        } else {
            deadline
        })
    }

    pub fn tick(&mut self, now: Tick) -> Outbox {
        self.ticked_at = Some(now);
        let mut out = Outbox::default();
        self.node.on_tick(now, &mut out);
        out
    }
}

impl<N: ?Sized> Deref for NodeHost<N> {
    type Target = N;
    fn deref(&self) -> &N {
        &self.node
    }
}

impl<N: ?Sized> DerefMut for NodeHost<N> {
    fn deref_mut(&mut self) -> &mut N {
        &mut self.node
    }
}

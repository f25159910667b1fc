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

    /// When the node is to be ticked next, seen at `now` (one look at its deadline).
    pub fn wake(&self, now: Tick) -> Wake {
        let Some(deadline) = self.node.next_deadline() else {
            return Wake::Never;
        };
        match self.ticked_at == Some(now) {
            false if deadline <= now => Wake::Now,
            false => Wake::At(deadline),
            // Ticked at `now` already: not before the next tick.
            true => Wake::At(deadline.max(now.after(1))),
        }
    }

    pub fn tick(&mut self, now: Tick) -> Outbox {
        self.ticked_at = Some(now);
        let mut out = Outbox::default();
        self.node.on_tick(now, &mut out);
        out
    }
}

/// When a hosted node is to be ticked next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Now: its deadline is due, and it was not ticked at this instant yet.
    Now,
    /// At this later time.
    At(Tick),
    /// It has no deadline.
    Never,
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

//! Reconcile triggers: the poll interval, `POST /v1/reconcile`, SIGHUP and VM exits all
//! queue a tick here, and any number of triggers while a tick is queued add nothing.

use tokio::sync::mpsc;

/// Queues at most one tick. Cloning shares the queue.
#[derive(Debug, Clone)]
pub struct Trigger {
    sender: mpsc::Sender<String>,
}

impl Trigger {
    /// A trigger and the receiver the tick loop reads.
    pub fn new() -> (Trigger, mpsc::Receiver<String>) {
        let (sender, receiver) = mpsc::channel(1);
        (Trigger { sender }, receiver)
    }

    /// Queues a tick caused by `reason`. Returns false when a tick was already queued, so
    /// this trigger coalesced into it.
    pub fn fire(&self, reason: &str) -> bool {
        self.sender.try_send(reason.to_owned()).is_ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn triggers_coalesce_into_one_tick() {
        let (trigger, mut receiver) = Trigger::new();
        assert!(trigger.fire("api"));
        assert!(!trigger.fire("sighup"));
        assert!(!trigger.clone().fire("poll"));
        assert_eq!(receiver.recv().await.unwrap(), "api");
        assert!(receiver.try_recv().is_err());
        assert!(trigger.fire("poll"));
    }
}

//! Per-service locks shared by the reconcile loop and the health monitor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// One async lock per service name. The reconcile loop (for create, update and delete) and
/// the monitor (for a restart) take the lock while they change the service's VM.
#[derive(Debug, Clone, Default)]
pub struct ServiceLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl ServiceLocks {
    /// Creates an empty set of locks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the lock of `service` and returns its guard; the lock is released when
    /// the guard is dropped.
    pub async fn lock(&self, service: &str) -> OwnedMutexGuard<()> {
        self.entry(service).lock_owned().await
    }

    /// Returns the guard of `service` if its lock is free.
    pub fn try_lock(&self, service: &str) -> Option<OwnedMutexGuard<()>> {
        self.entry(service).try_lock_owned().ok()
    }

    /// Drops the lock entry of a removed service; a holder keeps its guard valid.
    pub fn remove(&self, service: &str) {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(service);
    }

    fn entry(&self, service: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(service.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_is_per_service() {
        let locks = ServiceLocks::new();
        let guard = locks.lock("web").await;
        assert!(locks.try_lock("web").is_none());
        assert!(locks.try_lock("db").is_some());
        drop(guard);
        assert!(locks.try_lock("web").is_some());
    }
}

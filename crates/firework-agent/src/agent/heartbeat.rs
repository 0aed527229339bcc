//! The capacity gauges and the heartbeat to the node registry.

use super::*;

impl Agent {
    /// Sets the capacity gauges from the host, the desired services and the live VMs.
    pub(super) async fn record_capacity(&mut self, desired: &[DesiredVm]) {
        let host = match self.capacity.read() {
            Ok(host) => host,
            Err(error) => {
                debug!(%error, "cannot read host capacity for the metrics");
                return;
            }
        };
        let mut requested = Resources::default();
        for vm in desired {
            requested.vcpus += vm.fingerprint.vcpus;
            requested.memory_mb += u64::from(vm.fingerprint.memory_mb);
        }
        let mut used = Resources::default();
        for vm in self.actual().await.values().filter(|vm| vm.is_live()) {
            if let Some(intent) = &vm.intent {
                used.vcpus += intent.fingerprint.vcpus;
                used.memory_mb += u64::from(intent.fingerprint.memory_mb);
            }
        }
        crate::metrics::set_capacity(
            &self.parts.metrics,
            host,
            self.settings.reserved,
            requested,
            used,
        );
    }

    pub(super) async fn publish_heartbeat(&mut self, desired: &[DesiredVm]) {
        let Some(registry) = &self.parts.registry else {
            return;
        };
        let capacity = match self.capacity.read() {
            Ok(capacity) => capacity,
            Err(error) => {
                warn!(%error, "cannot read host capacity for the heartbeat");
                Resources::default()
            }
        };
        let mut used = Resources::default();
        for vm in desired {
            used.vcpus += vm.fingerprint.vcpus;
            used.memory_mb += u64::from(vm.fingerprint.memory_mb);
        }
        let record = NodeRecord {
            node: self.settings.node.clone(),
            labels: self.settings.heartbeat_labels(),
            host_ip: self.settings.host_ip,
            capacity,
            reserved: self.settings.reserved,
            used,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat: jiff::Timestamp::now().to_string(),
        };
        if let Err(error) = registry.write(&record).await {
            error!(error = %error_chain(&error), "cannot publish the heartbeat");
        }
    }
}

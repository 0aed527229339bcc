//! The tick's network steps: the network plan, applying it, and releasing the network of
//! VMs the tick deleted.

use super::*;

impl Agent {
    /// Builds the network plan of the desired networked services and of live networked
    /// VMs that are no longer desired, so a VM keeps its TAP until it is deleted. `None`
    /// without guest networking.
    pub(super) fn network_plan(
        &self,
        services: &[LabeledService],
        actual: &BTreeMap<String, ActualVm>,
    ) -> Option<NetworkPlan> {
        let (Some(settings), Some(_)) = (&self.settings.network, &self.parts.net) else {
            return None;
        };
        let mut plan = NetworkPlan {
            services: Vec::new(),
            ..settings.clone()
        };
        let mut names = BTreeSet::new();
        for labeled in services {
            let service = &labeled.service;
            let Some(network) = &service.network else {
                continue;
            };
            names.insert(service.name.clone());
            plan.services.push(ServiceNetwork {
                name: service.name.clone(),
                tap_name: network.interface.clone(),
                port_forwards: service
                    .port_forwards
                    .iter()
                    .map(|forward| PortForward {
                        host_port: forward.host_port,
                        vm_port: forward.vm_port,
                        protocol: match forward.protocol {
                            firework_model::service::Protocol::Tcp => Protocol::Tcp,
                            firework_model::service::Protocol::Udp => Protocol::Udp,
                        },
                    })
                    .collect(),
                links: service
                    .links
                    .iter()
                    .map(|link| link.service.clone())
                    .collect(),
            });
        }
        for (name, vm) in actual {
            let networked = vm
                .intent
                .as_ref()
                .and_then(|intent| intent.fingerprint.network.as_ref());
            if let Some(network) = networked
                && vm.is_live()
                && !names.contains(name)
            {
                plan.services.push(ServiceNetwork {
                    name: name.clone(),
                    tap_name: Some(network.tap.clone()),
                    port_forwards: Vec::new(),
                    links: Vec::new(),
                });
            }
        }
        // Links to services without a network are reported per service later.
        let networked: BTreeSet<String> = plan.services.iter().map(|s| s.name.clone()).collect();
        for service in &mut plan.services {
            service.links.retain(|link| networked.contains(link));
        }
        Some(plan)
    }

    /// Assigns addresses for `plan`, and sets up the host network when enabled.
    pub(super) async fn assign_network(
        &self,
        plan: Option<&NetworkPlan>,
    ) -> Result<Option<AppliedNetwork>, TickError> {
        let (Some(plan), Some(net)) = (plan, &self.parts.net) else {
            return Ok(None);
        };
        net.reconcile(plan)
            .await
            .map(Some)
            .map_err(TickError::Network)
    }

    /// Reconciles the network plan again without the VMs that `apply` deleted, so their TAP
    /// devices, nftables rules and address records go in this tick and not in the next one.
    /// Held, failed and skipped deletes keep their network. When the reconcile fails, returns
    /// each released service with the error, and the next tick's network step retries.
    pub(super) async fn release_deleted_networks(
        &self,
        plan: &NetworkPlan,
        apply: &ApplyReport,
    ) -> Vec<(String, String)> {
        let Some(net) = &self.parts.net else {
            return Vec::new();
        };
        let deleted: BTreeSet<&str> = apply
            .outcomes
            .iter()
            .filter(|outcome| outcome.kind == ActionKind::Delete && outcome.error.is_none())
            .map(|outcome| outcome.service.as_str())
            .collect();
        let released: Vec<String> = plan
            .services
            .iter()
            .filter(|service| deleted.contains(service.name.as_str()))
            .map(|service| service.name.clone())
            .collect();
        if released.is_empty() {
            return Vec::new();
        }

        let mut remaining = plan.clone();
        remaining
            .services
            .retain(|service| !deleted.contains(service.name.as_str()));
        for service in &mut remaining.services {
            service
                .links
                .retain(|link| !deleted.contains(link.as_str()));
        }
        match net.reconcile(&remaining).await {
            Ok(_) => {
                debug!(services = ?released, "removed the network of deleted vms");
                Vec::new()
            }
            Err(error) => {
                let message = crate::error::error_chain(error.as_ref());
                released
                    .into_iter()
                    .map(|service| {
                        error!(service = %service, error = %message, "failed to remove the network of the deleted vm; the next tick retries");
                        (service, message.clone())
                    })
                    .collect()
            }
        }
    }
}

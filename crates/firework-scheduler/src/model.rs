//! Conversions from the desired-state model's types to the scheduler's inputs.

use firework_model::node::Service;
use firework_model::registry::{self, NodeRecord};

use crate::request::{HostPort, NodeCapacity, Resources, ServiceRequest};

impl From<registry::Resources> for Resources {
    fn from(resources: registry::Resources) -> Self {
        Self::new(resources.vcpus, resources.memory_mb)
    }
}

impl From<&Service> for ServiceRequest {
    fn from(service: &Service) -> Self {
        Self {
            name: service.name.clone(),
            vcpus: service.vcpus,
            memory_mb: u64::from(service.memory_mb),
            node_type: service.node_type.clone(),
            anti_affinity_group: service.anti_affinity_group.clone(),
            host_ports: service
                .port_forwards
                .iter()
                .map(|forward| HostPort {
                    port: forward.host_port,
                    protocol: forward.protocol,
                })
                .collect(),
        }
    }
}

impl From<NodeRecord> for NodeCapacity {
    /// Takes the labels, host address, capacity and reserve of a record. Liveness is not
    /// checked here; [`discover`](crate::registry::discover) does that.
    fn from(record: NodeRecord) -> Self {
        Self {
            name: record.node,
            labels: record.labels.into_iter().collect(),
            host_ip: record.host_ip,
            capacity: record.capacity.into(),
            reserved: record.reserved.into(),
        }
    }
}

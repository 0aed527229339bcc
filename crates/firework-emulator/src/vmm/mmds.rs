//! MMDS configuration and data store.

use serde_json::{Value, json};

use super::Vmm;

impl Vmm {
    pub fn set_mmds_config(&mut self, body: Value) -> Result<(), String> {
        self.require_pre_boot()?;
        let prefix = "MMMDS config error:";
        let ids = body
            .get("network_interfaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(format!(
                "{prefix} The list of network interface IDs that allow forwarding MMDS requests is empty."
            ));
        }
        let known = ids.iter().all(|id| {
            id.as_str()
                .is_some_and(|id| self.nics.iter().any(|nic| nic.iface_id == id))
        });
        if !known {
            return Err(format!(
                "{prefix} The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface."
            ));
        }
        if let Some(address) = body.get("ipv4_address").and_then(Value::as_str) {
            let octets: Vec<u8> = address
                .split('.')
                .filter_map(|part| part.parse().ok())
                .collect();
            let link_local = octets.len() == 4
                && octets[0] == 169
                && octets[1] == 254
                && octets[2] != 0
                && octets[2] != 255;
            if !link_local {
                return Err(format!("{prefix} The MMDS IPv4 address is not link local."));
            }
        }
        self.mmds_config = Some(body);
        self.boot_specific_configured = true;
        Ok(())
    }

    fn mmds_available(&self) -> Result<(), String> {
        if self.is_started() && self.mmds_config.is_none() {
            return Err("MMDS error: The MMDS data store is not initialized.".into());
        }
        Ok(())
    }

    /// Stores MMDS data. Errors carry the status too, because an overflow is a 413.
    pub fn put_mmds(&mut self, data: Value) -> Result<(), (u16, String)> {
        self.mmds_available().map_err(|message| (400, message))?;
        self.check_mmds_size(&data)?;
        self.mmds_data = Some(data);
        Ok(())
    }

    pub fn patch_mmds(&mut self, patch: Value) -> Result<(), (u16, String)> {
        self.mmds_available().map_err(|message| (400, message))?;
        let Some(mut data) = self.mmds_data.clone() else {
            return Err((
                400,
                "MMDS error: The MMDS data store is not initialized.".into(),
            ));
        };
        merge_patch(&mut data, &patch);
        self.check_mmds_size(&data)?;
        self.mmds_data = Some(data);
        Ok(())
    }

    fn check_mmds_size(&self, data: &Value) -> Result<(), (u16, String)> {
        if data.to_string().len() > self.mmds_size_limit {
            return Err((
                413,
                "MMDS limit exceeded error: The MMDS patch request doesn't fit.".into(),
            ));
        }
        Ok(())
    }

    pub fn mmds(&self) -> Result<Value, String> {
        self.mmds_available()?;
        Ok(self.mmds_data.clone().unwrap_or_else(|| json!({})))
    }
}

/// Applies a JSON merge patch (RFC 7396).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_object) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_object) = target {
        for (key, value) in patch_object {
            if value.is_null() {
                target_object.remove(key);
            } else {
                merge_patch(
                    target_object.entry(key.clone()).or_insert(Value::Null),
                    value,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_rules() {
        let mut data = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut data, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(data, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }
}

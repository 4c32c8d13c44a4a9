//! What VMs read from the router: user data, metadata files, public keys and
//! a one-time password per VM NIC, per tier.
//!
//! The sizes are bounded before anything else is looked at (a request
//! carrying a huge user data costs a length check), and every string has a
//! grammar: metadata names become URL path segments, values and keys are
//! served as they are, so neither may hold a line break that would change
//! what a listing says.

use std::collections::{BTreeMap, HashSet};

use vpc_proto::v1 as pb;

use super::limits::at_most;
use super::{Result, bad, ipv4, mac, missing, shown};
use crate::model::{Limits, Router, Tier, VmData};

/// The largest user data of one VM, decoded: CloudStack's own ceiling (1 MB
/// through a POST of `deployVirtualMachine`).
pub const MAX_USER_DATA_BYTES: usize = 1 << 20;
/// Metadata files of one VM: the eleven CloudStack writes, plus room for the
/// details of registered user data.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// The longest metadata file name.
pub const MAX_METADATA_NAME_LEN: usize = 64;
/// The longest metadata value.
pub const MAX_METADATA_VALUE_BYTES: usize = 4096;
/// Public keys of one VM (CloudStack's `keypairs` takes several).
pub const MAX_PUBLIC_KEYS: usize = 32;
/// The longest public key line (an OpenSSH RSA 16384-bit key is about 2.8 KB).
pub const MAX_PUBLIC_KEY_BYTES: usize = 16 << 10;
/// The longest password.
pub const MAX_PASSWORD_LEN: usize = 255;

/// Metadata names the agent serves from other fields.
const RESERVED_NAMES: [&str; 2] = ["public-keys", "user-data"];

impl Limits {
    /// Checks the sizes of one tier's VM data (`field` names the list).
    pub fn check_vm_data(&self, field: &str, data: &pb::TierVmData) -> Result<()> {
        // One entry per VM NIC, like the leases.
        at_most(
            &format!("{field}.vms"),
            &data.vms,
            self.dhcp_entries,
            Some("--max-dhcp-entries"),
        )?;
        for (k, vm) in data.vms.iter().enumerate() {
            let f = |name: &str| format!("{field}.vms[{k}].{name}");
            if vm.user_data.len() > MAX_USER_DATA_BYTES {
                return Err(bad(
                    f("user_data"),
                    format!(
                        "{} bytes exceed the bound of {MAX_USER_DATA_BYTES}",
                        vm.user_data.len()
                    ),
                ));
            }
            at_most(&f("metadata"), &vm.metadata, MAX_METADATA_ENTRIES, None)?;
            at_most(&f("public_keys"), &vm.public_keys, MAX_PUBLIC_KEYS, None)?;
            for (j, key) in vm.public_keys.iter().enumerate() {
                if key.len() > MAX_PUBLIC_KEY_BYTES {
                    return Err(bad(
                        f(&format!("public_keys[{j}]")),
                        format!(
                            "{} bytes exceed the bound of {MAX_PUBLIC_KEY_BYTES}",
                            key.len()
                        ),
                    ));
                }
            }
            for (j, entry) in vm.metadata.iter().enumerate() {
                if entry.value.len() > MAX_METADATA_VALUE_BYTES {
                    return Err(bad(
                        f(&format!("metadata[{j}].value")),
                        format!(
                            "{} bytes exceed the bound of {MAX_METADATA_VALUE_BYTES}",
                            entry.value.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

pub(super) fn vm_data(
    router: &Router,
    wire: &[pb::TierVmData],
) -> Result<BTreeMap<u32, Vec<VmData>>> {
    let mut out = BTreeMap::new();
    for (i, d) in wire.iter().enumerate() {
        let f = |name: &str| format!("vm_data[{i}].{name}");
        let tier = router.tiers.get(&d.device_index).ok_or_else(|| {
            missing(
                f("device_index"),
                format!("eth{} serves no tier", d.device_index),
            )
        })?;
        let vms = tier_vms(&f("vms"), tier, &d.vms)?;
        if out.insert(d.device_index, vms).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} has two VM data lists", d.device_index),
            ));
        }
    }
    Ok(out)
}

/// Validates the VM data of one tier.
pub(crate) fn tier_vms(field: &str, tier: &Tier, vms: &[pb::VmData]) -> Result<Vec<VmData>> {
    let mut out = Vec::with_capacity(vms.len());
    let (mut macs, mut ips) = (HashSet::new(), HashSet::new());
    for (k, vm) in vms.iter().enumerate() {
        let f = |name: &str| format!("{field}[{k}].{name}");
        let data = VmData {
            mac: mac(&f("mac_address"), &vm.mac_address)?,
            ip: ipv4(&f("ip_address"), &vm.ip_address)?,
            user_data: vm.user_data.clone(),
            metadata: metadata(&f("metadata"), &vm.metadata)?,
            public_keys: vm
                .public_keys
                .iter()
                .enumerate()
                .map(|(j, key)| one_line(&f(&format!("public_keys[{j}]")), key).map(str::to_owned))
                .collect::<Result<_>>()?,
            password: password(&f("password"), &vm.password)?,
        };
        if !tier.cidr.contains(&data.ip)
            || data.ip == tier.gateway
            || data.ip == tier.cidr.network()
            || data.ip == tier.cidr.broadcast()
        {
            return Err(bad(
                f("ip_address"),
                format!("{} is not a VM address of the tier {}", data.ip, tier.cidr),
            ));
        }
        if !macs.insert(data.mac) {
            return Err(bad(
                f("mac_address"),
                format!("{} has two entries", data.mac),
            ));
        }
        if !ips.insert(data.ip) {
            return Err(bad(f("ip_address"), format!("{} has two entries", data.ip)));
        }
        out.push(data);
    }
    Ok(out)
}

/// The metadata files, in order, without the empty ones (CloudStack's router
/// deletes a file whose value is empty, so it is neither listed nor served).
fn metadata(field: &str, entries: &[pb::MetadataEntry]) -> Result<Vec<(String, String)>> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (j, e) in entries.iter().enumerate() {
        let f = |name: &str| format!("{field}[{j}].{name}");
        let ok = !e.name.is_empty()
            && e.name.len() <= MAX_METADATA_NAME_LEN
            && e.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(bad(
                f("name"),
                format!(
                    "{} is not a metadata name (1 to {MAX_METADATA_NAME_LEN} letters, digits, \
                     '-', '_' and '.' starting with a letter or digit)",
                    shown(&e.name)
                ),
            ));
        }
        if RESERVED_NAMES.contains(&e.name.as_str()) {
            return Err(bad(
                f("name"),
                format!("{} is served from its own field", e.name),
            ));
        }
        if !names.insert(e.name.as_str()) {
            return Err(bad(f("name"), format!("{} is given twice", e.name)));
        }
        one_line(&f("value"), &e.value)?;
        if !e.value.is_empty() {
            out.push((e.name.clone(), e.value.clone()));
        }
    }
    Ok(out)
}

/// A value served as one line: no control character (a line break would add
/// a line to a listing or a key file).
fn one_line<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!("{} holds a control character", shown(value)),
        ));
    }
    Ok(value)
}

/// A one-time password: printable ASCII without spaces, at most 255.
fn password(field: &str, value: &str) -> Result<String> {
    let ok = value.len() <= MAX_PASSWORD_LEN && value.chars().all(|c| c.is_ascii_graphic());
    if !ok {
        // Never echo a password back.
        return Err(bad(
            field,
            format!(
                "is not a password (at most {MAX_PASSWORD_LEN} printable ASCII characters, no space)"
            ),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_config;

    fn vm(ip: &str, mac: &str) -> pb::VmData {
        pb::VmData {
            mac_address: mac.into(),
            ip_address: ip.into(),
            user_data: b"#cloud-config\n".to_vec(),
            metadata: vec![
                pb::MetadataEntry {
                    name: "instance-id".into(),
                    value: "i-2-5-VM".into(),
                },
                pb::MetadataEntry {
                    name: "public-ipv4".into(),
                    value: String::new(),
                },
            ],
            public_keys: vec!["ssh-ed25519 AAAAC3Nz test@example".into()],
            password: String::new(),
        }
    }

    fn with(vms: Vec<pb::VmData>) -> pb::RouterConfig {
        let mut config = sample_config();
        config.vm_data = vec![pb::TierVmData {
            device_index: 2,
            vms,
        }];
        config
    }

    #[test]
    fn a_tiers_vm_data_is_kept_with_empty_metadata_left_out() {
        let router =
            Router::from_config(&with(vec![vm("10.1.1.5", "02:00:00:00:AA:05")])).expect("valid");
        let vms = &router.vm_data[&2];
        assert_eq!(vms[0].mac.to_string(), "02:00:00:00:aa:05");
        assert_eq!(
            vms[0].metadata,
            vec![("instance-id".to_string(), "i-2-5-VM".to_string())]
        );
    }

    #[test]
    fn an_address_outside_the_tier_a_twice_given_mac_and_a_line_break_are_refused() {
        let err =
            Router::from_config(&with(vec![vm("10.1.2.5", "02:00:00:00:aa:05")])).unwrap_err();
        assert_eq!(err.field, "vm_data[0].vms[0].ip_address");
        let err = Router::from_config(&with(vec![
            vm("10.1.1.5", "02:00:00:00:aa:05"),
            vm("10.1.1.6", "02:00:00:00:aa:05"),
        ]))
        .unwrap_err();
        assert_eq!(err.field, "vm_data[0].vms[1].mac_address");
        let mut bad_key = vm("10.1.1.5", "02:00:00:00:aa:05");
        bad_key.public_keys[0].push_str("\nssh-rsa AAAA attacker");
        let err = Router::from_config(&with(vec![bad_key])).unwrap_err();
        assert_eq!(err.field, "vm_data[0].vms[0].public_keys[0]");
        let mut bad_name = vm("10.1.1.5", "02:00:00:00:aa:05");
        bad_name.metadata[0].name = "../user-data".into();
        let err = Router::from_config(&with(vec![bad_name])).unwrap_err();
        assert_eq!(err.field, "vm_data[0].vms[0].metadata[0].name");
    }

    #[test]
    fn a_tier_the_router_does_not_serve_is_not_found() {
        let mut config = with(vec![vm("10.1.1.5", "02:00:00:00:aa:05")]);
        config.vm_data[0].device_index = 7;
        let err = Router::from_config(&config).unwrap_err();
        assert_eq!(err.field, "vm_data[0].device_index");
    }

    #[test]
    fn user_data_past_one_mebibyte_is_refused_naming_the_field() {
        let mut big = vm("10.1.1.5", "02:00:00:00:aa:05");
        big.user_data = vec![b'a'; MAX_USER_DATA_BYTES + 1];
        let err = Limits::default().check(&with(vec![big])).unwrap_err();
        assert_eq!(err.field, "vm_data[0].vms[0].user_data");
        let mut fits = vm("10.1.1.5", "02:00:00:00:aa:05");
        fits.user_data = vec![b'a'; MAX_USER_DATA_BYTES];
        Limits::default().check(&with(vec![fits])).unwrap();
    }
}

//! VM services on the router, as cloud-init's CloudStack data source expects
//! them: user data and metadata over HTTP on port 80 of each tier gateway,
//! and the password server on port 8080.
//!
//! This file is the pure part: a [`Directory`] of what each VM may read,
//! built from the validated desired state, and the answers to a request
//! given who asked ([`metadata_answer`], [`password_answer`]). The paths and
//! answers are those of CloudStack's virtual router: its Apache rewrites
//! `/latest/user-data`, `/latest/meta-data/` (the list of file names, one a
//! line) and `/latest/meta-data/<name>` (also `/latest/<name>`) to the files
//! of the requesting address, and answers 404 when there is none; its
//! `passwd_server_ip.py` answers `DomU_Request: send_my_password` with the
//! pending password or `saved_password`, clears it on `saved_password`, and
//! answers anything else with `bad_request`. `server` runs the listeners and
//! `neighbours` reads the MAC a request came from.

pub mod neighbours;
pub mod server;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::model::{Mac, Router, VmData};

/// cloud-init asks for metadata at `http://<router>/latest/...`.
pub const METADATA_PORT: u16 = 80;
/// cloud-init asks for the password at `<router>:8080`.
pub const PASSWORD_PORT: u16 = 8080;

/// Which VM data each tier gateway serves to which address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    /// Tier gateway address → guest NIC.
    gateways: HashMap<Ipv4Addr, u32>,
    /// (guest NIC, VM address) → what that VM reads.
    vms: HashMap<(u32, Ipv4Addr), VmData>,
}

/// The VM a request comes from, as far as the router can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The address the request was sent to (a tier gateway).
    pub local: Ipv4Addr,
    /// The address it came from.
    pub peer: Ipv4Addr,
}

impl Directory {
    /// The VM data of every tier of `router`.
    pub fn from_router(router: &Router) -> Directory {
        let gateways = router
            .tiers
            .values()
            .filter(|t| router.vm_data.contains_key(&t.index))
            .map(|t| (t.gateway, t.index))
            .collect();
        let vms = router
            .vm_data
            .iter()
            .flat_map(|(index, vms)| vms.iter().map(move |vm| ((*index, vm.ip), vm.clone())))
            .collect();
        Directory { gateways, vms }
    }

    /// The guest NIC whose gateway is `local`, when that tier serves VM data.
    pub fn tier_of(&self, local: Ipv4Addr) -> Option<u32> {
        self.gateways.get(&local).copied()
    }

    /// What `caller` may read: the entry of its address on the tier it asked,
    /// and only when the MAC the router sees it from (its neighbour entry on
    /// that tier) is the entry's. A VM that takes another's address gets
    /// nothing, and so does an address the tier does not know.
    pub fn vm(&self, caller: Caller, peer_mac: Option<Mac>) -> Option<&VmData> {
        let index = self.tier_of(caller.local)?;
        let vm = self.vms.get(&(index, caller.peer))?;
        (peer_mac == Some(vm.mac)).then_some(vm)
    }

    /// Number of VM entries, for logs.
    pub fn len(&self) -> usize {
        self.vms.len()
    }

    /// True when no tier serves VM data.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }
}

/// An HTTP answer: status and body (always `text/plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status: 200,
            body: body.into(),
        }
    }

    fn not_found() -> Answer {
        Answer {
            status: 404,
            body: b"Not Found\n".to_vec(),
        }
    }
}

/// The answer of the metadata server (port 80) to a GET of `path` by `vm`.
pub fn metadata_answer(vm: Option<&VmData>, path: &str) -> Answer {
    let Some(vm) = vm else {
        return Answer::not_found();
    };
    let Some(rest) = path.strip_prefix("/latest/") else {
        return Answer::not_found();
    };
    match rest {
        "user-data" if vm.user_data.is_empty() => Answer::not_found(),
        "user-data" => Answer::ok(vm.user_data.clone()),
        "meta-data" | "meta-data/" => Answer::ok(listing(vm)),
        _ => {
            // `/latest/meta-data/<name>`, and the older `/latest/<name>`
            // CloudStack's router still rewrites.
            let name = rest.strip_prefix("meta-data/").unwrap_or(rest);
            match file(vm, name) {
                Some(value) => Answer::ok(value),
                None => Answer::not_found(),
            }
        }
    }
}

/// The `/latest/meta-data/` listing: one file name a line, in the order the
/// manager gave them, `public-keys` where CloudStack puts it (after `vm-id`)
/// when the VM has keys.
fn listing(vm: &VmData) -> String {
    let mut names: Vec<&str> = vm.metadata.iter().map(|(n, _)| n.as_str()).collect();
    if !vm.public_keys.is_empty() {
        let at = names
            .iter()
            .position(|n| *n == "vm-id")
            .map_or(names.len(), |i| i + 1);
        names.insert(at, "public-keys");
    }
    names.iter().map(|n| format!("{n}\n")).collect()
}

fn file(vm: &VmData, name: &str) -> Option<String> {
    if name == "public-keys" {
        return (!vm.public_keys.is_empty()).then(|| vm.public_keys.join("\n"));
    }
    vm.metadata
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// What the password server does besides answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordEffect {
    None,
    /// The VM acknowledged this password: serve it no more.
    Acknowledged(String),
}

/// The answer of the password server (port 8080) to a GET by `vm` with the
/// `DomU_Request` header `request`; `acknowledged` is the password the VM
/// last acknowledged, if any.
pub fn password_answer(
    vm: Option<&VmData>,
    acknowledged: Option<&str>,
    request: Option<&str>,
) -> (Answer, PasswordEffect) {
    let pending = vm
        .map(|vm| vm.password.as_str())
        .filter(|p| !p.is_empty() && Some(*p) != acknowledged);
    match request {
        Some("send_my_password") => match pending {
            Some(password) => (Answer::ok(password), PasswordEffect::None),
            None => (Answer::ok("saved_password"), PasswordEffect::None),
        },
        Some("saved_password") => {
            let effect = match pending {
                Some(password) => PasswordEffect::Acknowledged(password.to_owned()),
                None => PasswordEffect::None,
            };
            (Answer::ok("saved_password"), effect)
        }
        _ => (
            Answer {
                status: 400,
                body: b"bad_request".to_vec(),
            },
            PasswordEffect::None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_config;
    use vpc_proto::v1 as pb;

    fn directory() -> Directory {
        let mut config = sample_config();
        config.vm_data = vec![pb::TierVmData {
            device_index: 2,
            vms: vec![pb::VmData {
                mac_address: "02:00:00:00:aa:05".into(),
                ip_address: "10.1.1.5".into(),
                user_data: b"#cloud-config\nhostname: web-1\n".to_vec(),
                metadata: ["service-offering", "instance-id", "vm-id", "local-ipv4"]
                    .iter()
                    .map(|n| pb::MetadataEntry {
                        name: n.to_string(),
                        value: format!("value of {n}"),
                    })
                    .collect(),
                public_keys: vec!["ssh-ed25519 AAAA one".into(), "ssh-rsa BBBB two".into()],
                password: "s3cret".into(),
            }],
        }];
        Directory::from_router(&Router::from_config(&config).expect("valid"))
    }

    const WEB1: Caller = Caller {
        local: Ipv4Addr::new(10, 1, 1, 1),
        peer: Ipv4Addr::new(10, 1, 1, 5),
    };

    fn web1_mac() -> Option<Mac> {
        "02:00:00:00:aa:05".parse().ok()
    }

    #[test]
    fn a_vm_reads_its_user_data_listing_and_files_by_both_paths() {
        let dir = directory();
        let vm = dir.vm(WEB1, web1_mac());
        assert_eq!(
            metadata_answer(vm, "/latest/user-data").body,
            b"#cloud-config\nhostname: web-1\n"
        );
        let listing = metadata_answer(vm, "/latest/meta-data/");
        assert_eq!(
            String::from_utf8(listing.body).unwrap(),
            "service-offering\ninstance-id\nvm-id\npublic-keys\nlocal-ipv4\n"
        );
        assert_eq!(
            metadata_answer(vm, "/latest/meta-data/public-keys").body,
            b"ssh-ed25519 AAAA one\nssh-rsa BBBB two"
        );
        assert_eq!(
            metadata_answer(vm, "/latest/instance-id").body,
            b"value of instance-id"
        );
        assert_eq!(metadata_answer(vm, "/latest/meta-data/nothing").status, 404);
        assert_eq!(metadata_answer(vm, "/other").status, 404);
    }

    #[test]
    fn another_mac_another_address_or_another_gateway_reads_nothing() {
        let dir = directory();
        assert!(dir.vm(WEB1, "02:00:00:00:aa:99".parse().ok()).is_none());
        assert!(dir.vm(WEB1, None).is_none());
        let other = Caller {
            peer: Ipv4Addr::new(10, 1, 1, 6),
            ..WEB1
        };
        assert!(dir.vm(other, web1_mac()).is_none());
        let wrong_tier = Caller {
            local: Ipv4Addr::new(10, 1, 2, 1),
            ..WEB1
        };
        assert!(dir.vm(wrong_tier, web1_mac()).is_none());
        assert_eq!(metadata_answer(None, "/latest/user-data").status, 404);
    }

    #[test]
    fn the_password_is_served_until_acknowledged_and_bad_requests_are_named() {
        let dir = directory();
        let vm = dir.vm(WEB1, web1_mac());
        let (answer, _) = password_answer(vm, None, Some("send_my_password"));
        assert_eq!(answer.body, b"s3cret");
        let (answer, effect) = password_answer(vm, None, Some("saved_password"));
        assert_eq!(answer.body, b"saved_password");
        assert_eq!(effect, PasswordEffect::Acknowledged("s3cret".into()));
        let (answer, _) = password_answer(vm, Some("s3cret"), Some("send_my_password"));
        assert_eq!(answer.body, b"saved_password");
        let (answer, _) = password_answer(None, None, Some("send_my_password"));
        assert_eq!(answer.body, b"saved_password");
        let (answer, _) = password_answer(vm, None, Some("give_me_everything"));
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (400, &b"bad_request"[..])
        );
    }
}

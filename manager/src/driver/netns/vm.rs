//! Guest VMs: a namespace with one veth per NIC in its tier's bridge and a
//! supervised DHCP client (`busybox udhcpc`) per NIC, which takes the
//! address, the default route and the name servers from the router, as a
//! real VM would.
//!
//! Name resolution: `ip netns exec <ns>` bind-mounts
//! `/etc/netns/<ns>/resolv.conf` over `/etc/resolv.conf` when the file
//! exists. The driver creates it before the DHCP client starts, and the
//! client's script rewrites it in place (same inode, so the bind mounts of
//! processes already running see the change too).

use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{NetnsError, Result};
use super::links::{self, Port};
use super::names::{self, Segment};
use super::process::{Prepare, ProcessSpec, Supervisor};
use super::router::remove_dir;
use super::{Inner, ip};
use crate::orchestration::model::{VmNicView, VmView};

/// A lease as the DHCP client's script recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The first router offered.
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// The host name the server sent back, if any.
    pub hostname: Option<String>,
    /// The MTU the server sent (option 26), which the client applied.
    pub mtu: Option<u32>,
}

impl Inner {
    pub(super) async fn start_vm(self: &Arc<Self>, view: &VmView) -> Result<()> {
        names::check_object_name("VM", &view.instance_name)?;
        let ns = self.names.vm_ns(&view.instance_name);
        let dir = self.vm_dir(&view.instance_name);
        // Recorded before anything is made, so the sweeper never takes a
        // starting VM's directory or namespace for a leftover.
        self.state()
            .vms
            .insert(view.instance_name.clone(), view.clone());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| NetnsError::io(format!("creating {}", dir.display()), e))?;
        self.ensure_vm_topology(&view.instance_name).await?;
        if self.is_supervised(&ns) {
            return Ok(());
        }
        let mut supervisors = Vec::new();
        for nic in &view.nics {
            let spec = self.dhcp_client_spec(view, nic)?;
            let script = spec.argv[spec.argv.len() - 1].clone();
            let adopt = spec.find_running(&[&script]).await;
            match Supervisor::start(
                spec,
                adopt,
                Some(self.vm_repair(&view.instance_name)),
                self.halted.clone(),
            ) {
                Ok(s) => supervisors.push(s),
                Err(e) => {
                    for s in supervisors {
                        s.stop().await;
                    }
                    return Err(e);
                }
            }
        }
        self.state().supervisors.insert(ns, supervisors);
        Ok(())
    }

    pub(super) async fn stop_vm(&self, view: &VmView) -> Result<()> {
        names::check_object_name("VM", &view.instance_name)?;
        self.state().vms.remove(&view.instance_name);
        let ns = self.names.vm_ns(&view.instance_name);
        let removed = self.remove_ns(&ns, Some(&view.zone_id)).await;
        // The name servers and the leases belong to the running VM: a
        // stopped VM holds no address (and a started one reports only the
        // lease it takes then).
        let etc = remove_dir(&ip::etc_dir(&ns));
        let leases = remove_leases(&self.vm_dir(&view.instance_name), view);
        removed.and(etc).and(leases)
    }

    pub(super) fn remove_vm_files(&self, instance: &str) -> Result<()> {
        names::check_object_name("VM", instance)?;
        remove_dir(&self.vm_dir(instance))
    }

    /// Creates the VM's namespace, its NICs and its resolv.conf; removes NICs
    /// no longer in the view. Idempotent; it also repairs a deleted namespace.
    async fn ensure_vm_topology(&self, instance: &str) -> Result<()> {
        let Some(view) = self.state().vms.get(instance).cloned() else {
            return Ok(());
        };
        let ns = self.names.vm_ns(&view.instance_name);
        let etc = ip::etc_dir(&ns);
        let resolv = etc.join("resolv.conf");
        if !resolv.exists() {
            std::fs::create_dir_all(&etc)
                .and_then(|()| std::fs::write(&resolv, "# filled in by the DHCP client\n"))
                .map_err(|e| NetnsError::io(format!("writing {}", resolv.display()), e))?;
        }
        let _topology = self.topology.lock().await;
        let zone_ns = self.ensure_zone(&view.zone_id).await?;
        ip::ensure(&ns).await?;
        let macs = view
            .nics
            .iter()
            .map(|n| names::normalize_mac(&n.mac))
            .collect::<Result<Vec<_>>>()?;
        let own = ip::links(&ns).await?;
        ip::apply(&links::prune(&ns, &own, &macs)).await?;
        for (nic, mac) in view.nics.iter().zip(macs) {
            let Some(uri) = nic.broadcast_uri.as_deref() else {
                return Err(NetnsError::Invalid(format!(
                    "NIC {} of VM {} has no broadcast URI: its tier is not implemented",
                    nic.device_index, view.instance_name
                )));
            };
            self.plug_port(&Port {
                zone_ns: zone_ns.clone(),
                zone_port: names::zone_port(&mac)?,
                segment: Segment::from_uri(Some(uri))?,
                target_ns: ns.clone(),
                ifname: names::nic_ifname(nic.device_index),
                mac: Some(mac),
                mtu: 0,
                addresses: Vec::new(),
                up: true,
                vtep: self.vtep(),
                standby: false,
            })
            .await?;
        }
        Ok(())
    }

    fn vm_repair(self: &Arc<Self>, instance: &str) -> Prepare {
        let inner = Arc::downgrade(self);
        let instance = instance.to_string();
        Arc::new(move || {
            let inner = inner.clone();
            let instance = instance.clone();
            Box::pin(async move {
                match inner.upgrade() {
                    Some(inner) => inner.ensure_vm_topology(&instance).await,
                    None => Ok(()),
                }
            })
        })
    }

    /// The DHCP client of one NIC, with its script written. The script's
    /// path is the last argument (it tells instances apart).
    fn dhcp_client_spec(&self, view: &VmView, nic: &VmNicView) -> Result<ProcessSpec> {
        let dir = self.vm_dir(&view.instance_name);
        let ifname = names::nic_ifname(nic.device_index);
        let ns = self.names.vm_ns(&view.instance_name);
        let script = dir.join(format!("udhcpc-{ifname}.sh"));
        let text = udhcpc_script(
            &lease_path(&dir, nic.device_index),
            &ip::etc_dir(&ns).join("resolv.conf"),
            nic.default,
        );
        std::fs::write(&script, text)
            .and_then(|()| {
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| NetnsError::io(format!("writing {}", script.display()), e))?;
        let mut argv: Vec<String> = ["busybox", "udhcpc", "-f", "-i", &ifname]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Option 12, so the router's DHCP server and DNS know the VM's name.
        if is_hostname(&view.hostname) {
            argv.extend(["-x".into(), format!("hostname:{}", view.hostname)]);
        }
        // Option 26: udhcpc asks only for its default options unless told;
        // the script applies the MTU a VXLAN tier announces.
        argv.extend(["-O".into(), "mtu".into()]);
        // Three discovers a second apart, then a one-second pause: a VM
        // started before its router's DHCP entry gets it within seconds.
        argv.extend(["-t", "3", "-T", "1", "-A", "1", "-s"].map(String::from));
        argv.push(script.display().to_string());
        Ok(ProcessSpec {
            label: format!("DHCP client of {} {ifname}", view.instance_name),
            ns,
            argv,
            pid_file: dir.join(format!("udhcpc-{ifname}.pid")),
            log_file: dir.join(format!("udhcpc-{ifname}.log")),
        })
    }
}

fn lease_path(dir: &Path, device_index: u32) -> PathBuf {
    dir.join(format!("{}.lease", names::nic_ifname(device_index)))
}

/// Removes the recorded leases of the VM's NICs; missing ones are fine.
fn remove_leases(dir: &Path, view: &VmView) -> Result<()> {
    for nic in &view.nics {
        let path = lease_path(dir, nic.device_index);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetnsError::io(format!("removing {}", path.display()), e)),
        }
    }
    Ok(())
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The lease of a VM's NIC, once its client has one.
pub(super) fn read_lease(dir: &Path, device_index: u32) -> Option<Lease> {
    parse_lease(&std::fs::read_to_string(lease_path(dir, device_index)).ok()?)
}

fn parse_lease(text: &str) -> Option<Lease> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .unwrap_or("")
    };
    let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
    Some(Lease {
        ip: field("ip").parse().ok()?,
        prefix: field("prefix").parse().ok().filter(|p| *p <= 32)?,
        router: field("router").parse().ok(),
        dns: field("dns")
            .split_whitespace()
            .filter_map(|d| d.parse().ok())
            .collect(),
        domain: some(field("domain")),
        hostname: some(field("hostname")),
        mtu: field("mtu").parse().ok(),
    })
}

/// Quotes a value for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The udhcpc hook script. `$1` is the event, the lease comes in the
/// environment. busybox 1.35 passes the prefix length in `$mask` (older
/// ones only the dotted `$subnet`, converted here).
fn udhcpc_script(lease: &Path, resolv: &Path, default: bool) -> String {
    let lease = sh_quote(&lease.display().to_string());
    let resolv = sh_quote(&resolv.display().to_string());
    let default = if default { "yes" } else { "no" };
    format!(
        r#"#!/bin/sh
# Written by the vpc-manager netns driver: applies a DHCP lease inside the
# VM's namespace and records it.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
LEASE={lease}
RESOLV={resolv}
DEFAULT_NIC={default}

mask_to_prefix() {{
    bits=0
    for octet in $(echo "$1" | tr . ' '); do
        case "$octet" in
            255) bits=$((bits + 8)) ;; 254) bits=$((bits + 7)) ;; 252) bits=$((bits + 6)) ;;
            248) bits=$((bits + 5)) ;; 240) bits=$((bits + 4)) ;; 224) bits=$((bits + 3)) ;;
            192) bits=$((bits + 2)) ;; 128) bits=$((bits + 1)) ;;
        esac
    done
    echo "$bits"
}}

case "$1" in
    deconfig)
        ip link set dev "$interface" up
        ip -4 addr flush dev "$interface"
        rm -f "$LEASE"
        ;;
    bound|renew)
        case "$mask" in
            ''|*.*) prefix=$(mask_to_prefix "${{subnet:-$mask}}") ;;
            *) prefix=$mask ;;
        esac
        # Option 26 (a VXLAN tier across hosts carries less than 1500).
        case "$mtu" in
            ''|*[!0-9]*) mtu="" ;;
            *) ip link set dev "$interface" mtu "$mtu" ;;
        esac
        current=$(ip -4 -o addr show dev "$interface" | awk '{{print $4}}')
        if [ "$current" != "$ip/$prefix" ]; then
            ip -4 addr flush dev "$interface"
            ip addr add "$ip/$prefix" dev "$interface"
        fi
        first_router=""
        for r in $router; do first_router=$r; break; done
        if [ "$DEFAULT_NIC" = yes ]; then
            if [ -n "$first_router" ]; then
                ip route replace default via "$first_router" dev "$interface"
            fi
            # In place: the file is bind-mounted as /etc/resolv.conf.
            {{
                for d in $dns; do echo "nameserver $d"; done
                if [ -n "$domain" ]; then echo "search $domain"; fi
            }} > "$RESOLV"
        fi
        printf 'ip=%s\nprefix=%s\nrouter=%s\ndns=%s\ndomain=%s\nhostname=%s\nmtu=%s\n' \
            "$ip" "$prefix" "$first_router" "$dns" "$domain" "$hostname" "$mtu" > "$LEASE.tmp"
        mv "$LEASE.tmp" "$LEASE"
        ;;
esac
exit 0
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_lease_is_parsed_and_a_partial_one_refused() {
        let lease = parse_lease(
            "ip=10.1.1.50\nprefix=24\nrouter=10.1.1.1\ndns=10.1.1.1 8.8.8.8\n\
             domain=cs1.internal\nhostname=web-1\nmtu=1450\n",
        )
        .unwrap();
        assert_eq!(lease.mtu, Some(1450));
        assert_eq!(lease.ip, Ipv4Addr::new(10, 1, 1, 50));
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(lease.dns.len(), 2);
        assert_eq!(lease.domain.as_deref(), Some("cs1.internal"));
        assert!(parse_lease("ip=10.1.1.50\nprefix=\n").is_none());
        let bare = parse_lease("ip=10.0.0.9\nprefix=16\nrouter=\ndns=\ndomain=\n").unwrap();
        assert_eq!((bare.router, bare.dns.len(), bare.domain), (None, 0, None));
        assert_eq!(bare.mtu, None);
    }

    #[test]
    fn the_script_quotes_its_paths_and_sets_routes_only_on_the_default_nic() {
        let s = udhcpc_script(
            Path::new("/d/it's/eth0.lease"),
            Path::new("/etc/netns/x/resolv.conf"),
            false,
        );
        assert!(s.contains(r"LEASE='/d/it'\''s/eth0.lease'"));
        assert!(s.contains("DEFAULT_NIC=no"));
        assert!(udhcpc_script(Path::new("/l"), Path::new("/r"), true).contains("DEFAULT_NIC=yes"));
        assert!(is_hostname("web-1") && !is_hostname("a b") && !is_hostname(""));
    }
}

//! The dnsmasq files of each tier, planned from the desired state.
//!
//! One dnsmasq per guest NIC (DESIGN §3), each with three files under the
//! agent's directory:
//! - `ethN.conf`: interface, static DHCP range and options. A change needs a
//!   restart.
//! - `ethN.hosts` (`dhcp-hostsfile`): one static lease per VM NIC.
//! - `ethN.names` (`addn-hosts`): `<ip> <hostname>.<domain> <hostname>` for
//!   every VM of every tier, so the router's DNS answers for a VM before it
//!   took a lease, and VMs resolve each other across tiers.
//!
//! dnsmasq re-reads the last two on SIGHUP, so adding or removing a VM never
//! restarts it. The options follow CloudStack's router (reference §4.9):
//! static range, infinite leases, router (3), DNS (6, the router first unless
//! the tier uses external DNS only), domain (15) and MTU (26); a VM's
//! non-default NICs get an address and the MTU only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::model::{DhcpHost, Mac, Router, Tier, dev_name};

/// The tag a hosts line sets on a VM NIC that must not get gateway, DNS or
/// domain (the VM's default route is on another NIC).
pub const NO_DEFAULT_TAG: &str = "nodefault";

/// The planned files of one tier's dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierFiles {
    /// The guest NIC's device index.
    pub index: u32,
    /// The tier gateway: dnsmasq's address and DHCP server identifier.
    pub gateway: Ipv4Addr,
    /// `<dir>/ethN.conf`, passed with `--conf-file`.
    pub conf_path: PathBuf,
    /// The configuration; a change needs a restart.
    pub conf: String,
    /// `<dir>/ethN.hosts`, the `dhcp-hostsfile`.
    pub hosts_path: PathBuf,
    /// The static leases, one line per VM NIC; re-read on SIGHUP.
    pub hosts: String,
    /// `<dir>/ethN.names`, the `addn-hosts` file.
    pub names_path: PathBuf,
    /// The DNS names of the tier's VMs; re-read on SIGHUP.
    pub names: String,
}

impl TierFiles {
    /// The number of static leases in the hosts file.
    pub fn host_count(&self) -> usize {
        self.static_leases().len()
    }

    /// The `(mac, ip)` pairs of the hosts file.
    pub fn static_leases(&self) -> Vec<(Mac, Ipv4Addr)> {
        self.hosts
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(',');
                let mac = fields.next()?.parse().ok()?;
                let ip = fields.find_map(|f| f.parse().ok())?;
                Some((mac, ip))
            })
            .collect()
    }
}

/// `<dir>/eth<index>.<ext>`: every file of a tier's dnsmasq (`conf`, `hosts`,
/// `names`, `leases`, `pid`, `log`) is named this way.
pub fn tier_path(dir: &Path, index: u32, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", dev_name(index)))
}

/// The extensions of every file kept for a tier; nothing else in the
/// directory is ever removed.
pub const TIER_FILES: [&str; 7] = ["conf", "hosts", "names", "leases", "pid", "log", "log.1"];

/// The device index of a file the supervisor names (`eth<N>.<known ext>`).
pub fn parse_tier_file(name: &str) -> Option<u32> {
    let (stem, ext) = name.split_once('.')?;
    let index = stem.strip_prefix("eth")?.parse().ok()?;
    (TIER_FILES.contains(&ext) && dev_name(index) == stem).then_some(index)
}

/// What must happen to one tier's dnsmasq to go from one plan to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A new tier: write its files and start its dnsmasq.
    Start(u32),
    /// The configuration changed: restart.
    Restart(u32),
    /// Only the hosts or names changed: SIGHUP.
    Reload(u32),
    /// The tier is gone: stop its dnsmasq and remove its files.
    Stop(u32),
}

/// Plans one [`TierFiles`] per tier, by device index, with files under `dir`.
pub fn plan(router: &Router, dir: &Path) -> Vec<TierFiles> {
    plan_with_links(router, dir, &BTreeMap::new())
}

/// The MTU a tier's DHCP announces (option 26): the tier's own when the
/// manager set one; else its link's when below Ethernet's 1500. The link is
/// what the host made of the segment (a VXLAN tier across hosts carries the
/// underlay's MTU minus 50, which only the host agent knows, and which
/// changes when the router moves to a host with another underlay), and a
/// VM must not send frames the segment cannot carry.
pub fn dhcp_mtu(tier: Option<u32>, link: Option<u32>) -> Option<u32> {
    tier.or(link.filter(|m| *m < 1500))
}

/// What [`plan_with_links`] reads of a router and its links: a router whose
/// tiers, DHCP hosts and link MTUs equal these gets the same files. An ACL,
/// NAT or route change leaves all three as they were, so the agent keeps
/// what it gave dnsmasq last instead of planning and reading back every
/// tier's files again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    tiers: BTreeMap<u32, Tier>,
    dhcp: BTreeMap<u32, Vec<DhcpHost>>,
    link_mtus: BTreeMap<String, u32>,
}

impl Inputs {
    /// The inputs of `router` with the links' MTUs `link_mtus`.
    pub fn of(router: &Router, link_mtus: &BTreeMap<String, u32>) -> Inputs {
        Inputs {
            tiers: router.tiers.clone(),
            dhcp: router.dhcp.clone(),
            link_mtus: link_mtus.clone(),
        }
    }

    /// Whether `router` with `link_mtus` plans the files these inputs did.
    pub fn same(&self, router: &Router, link_mtus: &BTreeMap<String, u32>) -> bool {
        self.tiers == router.tiers && self.dhcp == router.dhcp && self.link_mtus == *link_mtus
    }
}

/// [`plan`], with the MTU of each link by name (`eth1` → 1450) as the
/// kernel reports it, for tiers whose MTU the manager left unset.
pub fn plan_with_links(
    router: &Router,
    dir: &Path,
    link_mtus: &BTreeMap<String, u32>,
) -> Vec<TierFiles> {
    let hosts_of = |index: u32| router.dhcp.get(&index).map_or(&[][..], Vec::as_slice);
    // Every tier's DNS answers for the VMs of all tiers, as one router's DNS
    // does on CloudStack: VMs find each other by name across tiers.
    let names: String = router
        .tiers
        .values()
        .map(|tier| render_names(tier, hosts_of(tier.index)))
        .collect();
    router
        .tiers
        .values()
        .map(|tier| TierFiles {
            index: tier.index,
            gateway: tier.gateway,
            conf_path: tier_path(dir, tier.index, "conf"),
            conf: render_conf(
                tier,
                dir,
                dhcp_mtu(tier.mtu, link_mtus.get(&dev_name(tier.index)).copied()),
            ),
            hosts_path: tier_path(dir, tier.index, "hosts"),
            hosts: render_hosts(hosts_of(tier.index)),
            names_path: tier_path(dir, tier.index, "names"),
            names: names.clone(),
        })
        .collect()
}

/// The actions that turn `old` into `new`, sorted by kind then index.
pub fn diff(old: &[TierFiles], new: &[TierFiles]) -> Vec<Action> {
    let mut actions = Vec::new();
    for n in new {
        match old.iter().find(|o| o.index == n.index) {
            None => actions.push(Action::Start(n.index)),
            Some(o) if o.conf != n.conf || o.conf_path != n.conf_path => {
                actions.push(Action::Restart(n.index))
            }
            Some(o) if o.hosts != n.hosts || o.names != n.names => {
                actions.push(Action::Reload(n.index))
            }
            Some(_) => {}
        }
    }
    for o in old {
        if !new.iter().any(|n| n.index == o.index) {
            actions.push(Action::Stop(o.index));
        }
    }
    actions.sort();
    actions
}

/// The leases of a dnsmasq lease file (`<expiry> <mac> <ip> <hostname>
/// <client id>` lines) that no static lease of `files` backs any more.
pub fn stale_leases(files: &TierFiles, lease_file: &str) -> Vec<(Mac, Ipv4Addr)> {
    let wanted = files.static_leases();
    parse_leases(lease_file)
        .into_iter()
        .filter(|lease| !wanted.contains(lease))
        .collect()
}

/// The `(mac, ip)` of each Ethernet lease in a dnsmasq lease file
/// (`<expiry> <mac> <ip> <hostname> <client id>` lines).
fn parse_leases(text: &str) -> Vec<(Mac, Ipv4Addr)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// A BOOTP request carrying DHCPRELEASE (RFC 2131 §4.4.4): `ciaddr` is the
/// released address, `chaddr` the client's MAC, option 54 the server.
pub fn release_packet(server: Ipv4Addr, ip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6; // MAC length
    p[12..16].copy_from_slice(&ip.octets()); // ciaddr
    p[28..34].copy_from_slice(&mac.0); // chaddr
    p.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]); // magic cookie
    p.extend_from_slice(&[53, 1, 7]); // message type: DHCPRELEASE
    p.extend_from_slice(&[54, 4]);
    p.extend_from_slice(&server.octets()); // server identifier
    p.push(255);
    // Pad to the minimum BOOTP message size.
    p.resize(300, 0);
    p
}

/// The one way a value enters a dnsmasq file. Every character that could end
/// the line, start a comment, quote, or separate an option's fields (anything
/// outside `[A-Za-z0-9._:/@+-]`) becomes `_`. Validation already refuses such
/// values (`model::validate::text`); this keeps a value that skipped it from
/// ever adding a line or a directive.
pub fn escape(value: impl std::fmt::Display) -> String {
    value
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn render_conf(tier: &Tier, dir: &Path, mtu: Option<u32>) -> String {
    let dev = escape(dev_name(tier.index));
    let path = |ext: &str| escape(tier_path(dir, tier.index, ext).display());
    let gateway = escape(tier.gateway);
    let domain = escape(&tier.domain);
    let mut c = String::new();
    let mut line = |l: &str| {
        c.push_str(l);
        c.push('\n');
    };
    line(&format!(
        "# dnsmasq of {dev} (tier {}), written by vr-agent: edits are lost.",
        escape(&tier.network_id)
    ));
    // One instance per tier: serve only this NIC. dnsmasq adds `lo` to any
    // `interface=` list; every instance binding 127.0.0.1:53 would clash.
    line(&format!("interface={dev}"));
    line("except-interface=lo");
    // bind-dynamic binds the tier's own addresses (so instances of other tiers
    // can share port 53 and 67) and, unlike bind-interfaces, picks up an
    // address that appears after start instead of refusing to start.
    line("bind-dynamic");
    line(&format!("listen-address={gateway}"));
    // Nothing from the router's own /etc: upstreams come from `server=` lines.
    line("no-resolv");
    line("no-hosts");
    // Every address is statically assigned: pinging before an offer would only
    // delay each lease by seconds.
    line("no-ping");
    // Its own file, which it reopens on SIGUSR2 after the supervisor rotated
    // it (`apply::dnsmasq::log`).
    line(&format!("log-facility={}", path("log")));
    line("domain-needed");
    line("dhcp-authoritative");
    // dnsmasq's default of 1000 leases would starve a large tier.
    line(&format!(
        "dhcp-lease-max={}",
        1u64 << (32 - tier.cidr.prefix_len())
    ));
    line(&format!("dhcp-leasefile={}", path("leases")));
    // dnsmasq opens its sockets and lease file as root, then runs as its
    // unprivileged user (`--dnsmasq-user`, `nobody` by default):
    // the two files it re-reads on SIGHUP must be world-readable (the
    // supervisor checks the directory and writes them 0644).
    line(&format!("dhcp-hostsfile={}", path("hosts")));
    line(&format!("addn-hosts={}", path("names")));
    // Static mode: only MACs in the hosts file get an address. Infinite
    // leases, as on CloudStack: renewals that fail cannot take a VM's route.
    line(&format!(
        "dhcp-range=set:{dev},{},static,{},infinite",
        escape(tier.cidr.network()),
        escape(tier.cidr.netmask())
    ));
    // cloud-init's CloudStack data source finds the router by this name
    // before anything else; CloudStack's router answers it with its
    // address on the tier.
    if tier.domain.is_empty() {
        line(&format!("host-record=data-server,{gateway}"));
    } else {
        line(&format!(
            "host-record=data-server,data-server.{domain},{gateway}"
        ));
    }
    if !tier.domain.is_empty() {
        line(&format!("domain={domain}"));
        // Answer the tier's names locally, never forward them.
        line(&format!("local=/{domain}/"));
        line("expand-hosts");
    }
    for server in &tier.dns_servers {
        line(&format!("server={}", escape(server)));
    }
    let default = format!("tag:{dev},tag:!{NO_DEFAULT_TAG}");
    line(&format!("dhcp-option={default},option:router,{gateway}"));
    let mut dns: Vec<String> = Vec::new();
    if !tier.external_dns_only {
        dns.push(gateway.clone());
    }
    // Option 6 carries IPv4 addresses only; IPv6 upstreams are still used by
    // the router itself through `server=`.
    dns.extend(tier.dns_servers.iter().filter_map(|s| match s {
        IpAddr::V4(v4) => Some(escape(v4)),
        IpAddr::V6(_) => None,
    }));
    line(&option_line(&default, "dns-server", &dns.join(",")));
    line(&option_line(&default, "domain-name", &domain));
    // Options without data override dnsmasq's defaults (itself as router and
    // DNS server, `domain=` as domain): non-default NICs get none of them.
    let nodefault = format!("tag:{dev},tag:{NO_DEFAULT_TAG}");
    for option in ["router", "dns-server", "domain-name"] {
        line(&format!("dhcp-option={nodefault},option:{option}"));
    }
    if let Some(mtu) = mtu {
        line(&format!("dhcp-option=tag:{dev},option:mtu,{mtu}"));
    }
    c
}

/// `dhcp-option=<tags>,option:<name>[,<value>]`; an empty value sends nothing.
fn option_line(tags: &str, name: &str, value: &str) -> String {
    if value.is_empty() {
        format!("dhcp-option={tags},option:{name}")
    } else {
        format!("dhcp-option={tags},option:{name},{value}")
    }
}

fn render_hosts(hosts: &[DhcpHost]) -> String {
    let mut out = String::new();
    for h in hosts {
        let tag = if h.default_gateway {
            String::new()
        } else {
            format!("set:{NO_DEFAULT_TAG},")
        };
        let _ = writeln!(
            out,
            "{},{tag}{},{},infinite",
            escape(h.mac),
            escape(h.ip),
            escape(&h.hostname)
        );
    }
    out
}

fn render_names(tier: &Tier, hosts: &[DhcpHost]) -> String {
    let mut out = String::new();
    let domain = escape(&tier.domain);
    for h in hosts {
        let (ip, host) = (escape(h.ip), escape(&h.hostname));
        if tier.domain.is_empty() {
            let _ = writeln!(out, "{ip} {host}");
        } else {
            let _ = writeln!(out, "{ip} {host}.{domain} {host}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_config;
    use vpc_proto::v1 as pb;

    fn sample() -> Router {
        let mut config = sample_config();
        config.guest_networks[1].dns_servers = vec!["8.8.8.8".into(), "2001:db8::53".into()];
        config.guest_networks[1].external_dns_only = true;
        config.guest_networks[1].mtu = 0;
        config.guest_networks[1].domain_name = String::new();
        config.dhcp[0].entries.push(pb::DhcpEntry {
            mac_address: "02:00:00:00:aa:06".into(),
            ip_address: "10.1.1.6".into(),
            hostname: "db-1".into(),
            default_gateway: false,
            ..Default::default()
        });
        config.dhcp.push(pb::TierDhcp {
            device_index: 3,
            entries: vec![pb::DhcpEntry {
                mac_address: "02:00:00:00:bb:05".into(),
                ip_address: "10.1.2.5".into(),
                hostname: "app-1".into(),
                default_gateway: true,
                ..Default::default()
            }],
        });
        Router::from_config(&config).expect("valid sample")
    }

    fn render(files: &[TierFiles]) -> String {
        let mut out = String::new();
        for f in files {
            for (path, text) in [
                (&f.conf_path, &f.conf),
                (&f.hosts_path, &f.hosts),
                (&f.names_path, &f.names),
            ] {
                let _ = write!(out, "==> {} <==\n{text}", path.display());
            }
        }
        out
    }

    #[test]
    fn the_inputs_change_with_tiers_hosts_and_mtus_only() {
        let router = sample();
        let mtus: BTreeMap<String, u32> = [("eth2".to_string(), 1500)].into();
        let given = Inputs::of(&router, &mtus);
        assert!(given.same(&router, &mtus));
        // An ACL or NAT change plans the same files.
        let mut nat = router.clone();
        nat.port_forwards.clear();
        nat.acls.clear();
        assert!(given.same(&nat, &mtus));
        assert_eq!(
            render(&plan_with_links(&nat, Path::new("/d"), &mtus)),
            render(&plan_with_links(&router, Path::new("/d"), &mtus))
        );
        // A host renamed, a tier's MTU, a link's MTU: other files.
        let mut host = router.clone();
        host.dhcp.values_mut().next().unwrap()[0].hostname = "renamed".into();
        assert!(!given.same(&host, &mtus));
        let mut tier = router.clone();
        tier.tiers.values_mut().next().unwrap().mtu = Some(1400);
        assert!(!given.same(&tier, &mtus));
        let lower: BTreeMap<String, u32> = [("eth2".to_string(), 1450)].into();
        assert!(!given.same(&router, &lower));
    }

    #[test]
    fn sample_router_files_snapshot() {
        insta::assert_snapshot!(render(&plan(&sample(), Path::new("/run/vr-agent/dnsmasq"))));
    }

    #[test]
    fn escaping_keeps_a_value_on_its_line_and_inside_its_field() {
        assert_eq!(escape("10.1.1.1"), "10.1.1.1");
        assert_eq!(
            escape("/run/vr-agent/eth2.hosts"),
            "/run/vr-agent/eth2.hosts"
        );
        assert_eq!(escape("2001:db8::53"), "2001:db8::53");
        let hostile = escape("x\ndhcp-script=/tmp/p #,\"'\r\0é");
        assert_eq!(hostile, "x_dhcp-script_/tmp/p________");
        assert!(!hostile.contains(['\n', '\r', '#', ',', '=', '"']));
    }

    #[test]
    fn one_file_set_per_tier_even_without_leases() {
        let router = Router::from_config(&sample_config()).unwrap();
        let files = plan(&router, Path::new("/d"));
        assert_eq!(files.iter().map(|f| f.index).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(files[1].hosts, "");
        assert_eq!(files[0].host_count(), 1);
        assert_eq!(
            plan(&sample(), Path::new("/d"))[0].static_leases(),
            [
                (
                    "02:00:00:00:aa:05".parse().unwrap(),
                    "10.1.1.5".parse().unwrap()
                ),
                (
                    "02:00:00:00:aa:06".parse().unwrap(),
                    "10.1.1.6".parse().unwrap()
                )
            ]
        );
        assert_eq!(files[1].conf_path, Path::new("/d/eth3.conf"));
    }

    #[test]
    fn a_tier_link_below_1500_is_announced_by_dhcp_unless_the_tier_sets_its_own() {
        assert_eq!(dhcp_mtu(None, Some(1450)), Some(1450));
        assert_eq!(dhcp_mtu(None, Some(1500)), None);
        assert_eq!(dhcp_mtu(None, Some(9000)), None);
        assert_eq!(dhcp_mtu(None, None), None);
        assert_eq!(dhcp_mtu(Some(1400), Some(1450)), Some(1400));
        assert_eq!(dhcp_mtu(Some(9000), Some(1500)), Some(9000));

        // The sample's tier on eth3 sets no MTU; its link at 1450 adds the
        // option, at 1500 (or unknown) nothing. The tier on eth2 sets 1500,
        // which its link does not change.
        let router = sample();
        let dir = Path::new("/d");
        let links = BTreeMap::from([("eth2".to_string(), 1450), ("eth3".to_string(), 1450)]);
        let files = plan_with_links(&router, dir, &links);
        assert!(
            files[1]
                .conf
                .contains("dhcp-option=tag:eth3,option:mtu,1450"),
            "{}",
            files[1].conf
        );
        assert!(
            files[0]
                .conf
                .contains("dhcp-option=tag:eth2,option:mtu,1500")
        );
        let full = BTreeMap::from([("eth3".to_string(), 1500)]);
        assert!(
            !plan_with_links(&router, dir, &full)[1]
                .conf
                .contains("option:mtu")
        );
        assert!(!plan(&router, dir)[1].conf.contains("option:mtu"));
        // A changed link MTU restarts that tier's dnsmasq only.
        assert_eq!(diff(&plan(&router, dir), &files), [Action::Restart(3)]);
    }

    #[test]
    fn only_supervised_file_names_belong_to_a_tier() {
        assert_eq!(parse_tier_file("eth2.conf"), Some(2));
        assert_eq!(parse_tier_file("eth12.log.1"), Some(12));
        assert_eq!(parse_tier_file("eth2.conf.tmp"), None);
        assert_eq!(parse_tier_file("eth02.conf"), None);
        assert_eq!(parse_tier_file("lo.conf"), None);
        assert_eq!(parse_tier_file("eth2.other"), None);
    }

    #[test]
    fn leases_are_parsed_and_releases_built() {
        let leases = "0 02:00:0a:01:01:05 10.1.1.5 web-1 01:02:00:0a:01:01:05\n\
                      0 10-00:11 10.1.1.9 * *\n";
        let mac: Mac = "02:00:0a:01:01:05".parse().unwrap();
        let ip: Ipv4Addr = "10.1.1.5".parse().unwrap();
        assert_eq!(parse_leases(leases), [(mac, ip)]);
        let p = release_packet("10.1.1.1".parse().unwrap(), ip, mac);
        assert_eq!(p.len(), 300);
        assert_eq!((&p[12..16], &p[28..34]), (&ip.octets()[..], &mac.0[..]));
        assert_eq!(
            &p[236..249],
            &[99, 130, 83, 99, 53, 1, 7, 54, 4, 10, 1, 1, 1]
        );
    }

    #[test]
    fn diff_tells_reload_from_restart() {
        let dir = Path::new("/d");
        let old = plan(&sample(), dir);
        assert_eq!(diff(&old, &old), []);
        assert_eq!(diff(&[], &old), [Action::Start(2), Action::Start(3)]);
        assert_eq!(diff(&old, &[]), [Action::Stop(2), Action::Stop(3)]);

        let mut config = sample_config();
        config.dhcp[0].entries[0].hostname = "web-9".into();
        config.guest_networks[1].mtu = 9000;
        let new = plan(&Router::from_config(&config).unwrap(), dir);
        assert_eq!(diff(&old, &new), [Action::Restart(3), Action::Reload(2)]);
        assert_eq!(diff(&old, &new[..1]), [Action::Reload(2), Action::Stop(3)]);
    }
}

//! DHCP in the lab: a `dnsmasq` server and a one-shot `busybox udhcpc` client.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lab::{Lab, Netns};
use crate::link::check_ifname;
use crate::process::ProcessHandle;

/// How long [`Lab::dnsmasq`] waits for the server to report that it is ready.
const DNSMASQ_READY: Duration = Duration::from_secs(5);

/// What [`Lab::dnsmasq`] should serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqConfig {
    /// The interface to serve (it must exist and carry an address in the range's subnet).
    pub interface: String,
    /// First address of the dynamic range.
    pub range_start: Ipv4Addr,
    /// Last address of the dynamic range.
    pub range_end: Ipv4Addr,
    /// Netmask handed out with every lease.
    pub netmask: Ipv4Addr,
    /// Default gateway (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// Static leases: `(mac, ip, hostname)`.
    pub hosts: Vec<(String, Ipv4Addr, String)>,
    /// Domain name (option 15), if any.
    pub domain: Option<String>,
    /// DNS servers to advertise (option 6); empty advertises none.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Serve DNS on port 53 in the namespace (answers for `hosts` names under `domain`).
    /// Off by default: `--port=0` keeps dnsmasq to DHCP only.
    pub serve_dns: bool,
    /// Lease time; dnsmasq's minimum is 2 minutes.
    pub lease_time: Duration,
}

impl DnsmasqConfig {
    /// A DHCP-only configuration for `interface` with a dynamic range and nothing else.
    pub fn new(
        interface: &str,
        range_start: Ipv4Addr,
        range_end: Ipv4Addr,
        netmask: Ipv4Addr,
    ) -> Self {
        Self {
            interface: interface.to_owned(),
            range_start,
            range_end,
            netmask,
            router: None,
            hosts: Vec::new(),
            domain: None,
            dns_servers: Vec::new(),
            serve_dns: false,
            lease_time: Duration::from_secs(3600),
        }
    }

    /// The dnsmasq configuration file for this config, with leases kept in `lease_file`.
    pub fn render(&self, lease_file: &Path) -> Result<String> {
        check_ifname(&self.interface)?;
        let mut conf = String::new();
        let mut line = |l: String| {
            conf.push_str(&l);
            conf.push('\n');
        };
        // Serve exactly one interface, and never the namespace's loopback.
        line(format!("interface={}", self.interface));
        line("except-interface=lo".into());
        line("bind-interfaces".into());
        // Nothing from the host: no /etc/resolv.conf upstreams, no /etc/hosts names.
        line("no-resolv".into());
        line("no-hosts".into());
        if !self.serve_dns {
            line("port=0".into());
        }
        // The lab directory is root's and mode 0700; stay root to keep writing the leases.
        line("user=root".into());
        line(format!("dhcp-leasefile={}", lease_file.display()));
        line("dhcp-authoritative".into());
        // dnsmasq pings an address before offering it and ignores the client meanwhile,
        // which costs seconds per lease; nothing else allocates in a lab subnet.
        line("no-ping".into());
        line("log-dhcp".into());
        line("log-facility=-".into());
        line(format!(
            "dhcp-range={},{},{},{}s",
            self.range_start,
            self.range_end,
            self.netmask,
            self.lease_time.as_secs().max(120)
        ));
        if let Some(router) = self.router {
            line(format!("dhcp-option=option:router,{router}"));
        }
        if !self.dns_servers.is_empty() {
            let servers: Vec<String> = self.dns_servers.iter().map(|s| s.to_string()).collect();
            line(format!(
                "dhcp-option=option:dns-server,{}",
                servers.join(",")
            ));
        }
        if let Some(domain) = &self.domain {
            check_conf_value("domain", domain)?;
            line(format!("domain={domain}"));
            // `domain=` alone only sets the DNS domain; option 15 must be asked for.
            line(format!("dhcp-option=option:domain-name,{domain}"));
        }
        for (mac, ip, hostname) in &self.hosts {
            check_conf_value("MAC", mac)?;
            check_conf_value("hostname", hostname)?;
            line(format!("dhcp-host={mac},{ip},{hostname}"));
        }
        Ok(conf)
    }
}

/// Refuses values that would break or extend the generated configuration.
fn check_conf_value(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains([',', '\n', ' ', '#']) {
        return Err(Error::InvalidArgument(format!(
            "dnsmasq {what} {value:?} is empty or contains ',', ' ', '#' or a newline"
        )));
    }
    Ok(())
}

/// A running dnsmasq started by [`Lab::dnsmasq`].
#[derive(Debug)]
pub struct Dnsmasq {
    process: ProcessHandle,
    conf_file: PathBuf,
    lease_file: PathBuf,
}

impl Dnsmasq {
    /// The dnsmasq process (pid, log, kill).
    pub fn process(&self) -> &ProcessHandle {
        &self.process
    }

    /// The generated configuration file.
    pub fn conf_file(&self) -> &Path {
        &self.conf_file
    }

    /// The lease database dnsmasq maintains.
    pub fn lease_file(&self) -> &Path {
        &self.lease_file
    }

    /// The current content of the lease database (`expiry mac ip hostname client-id` lines).
    pub fn leases(&self) -> String {
        fs::read_to_string(&self.lease_file).unwrap_or_default()
    }
}

/// A lease obtained by [`Lab::dhcp_client`], as reported by udhcpc to its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The first router offered, if any.
    pub router: Option<Ipv4Addr>,
    /// The DNS servers offered.
    pub dns: Vec<Ipv4Addr>,
    /// The domain name offered, if any.
    pub domain: Option<String>,
    /// The server identifier (option 54): the address cloud-init's
    /// CloudStack data source takes for the virtual router.
    pub server: Option<Ipv4Addr>,
}

/// The udhcpc hook script. `$1` is the event; the lease arrives in environment variables.
///
/// busybox 1.35 passes the prefix length in `$mask` and the dotted netmask in `$subnet`;
/// older versions only had `$subnet`, so the script falls back to converting it.
fn udhcpc_script(result_file: &Path) -> String {
    let result = result_file.display();
    format!(
        r#"#!/bin/sh
# Generated by vpc-integration: applies a udhcpc lease and records it for the test.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
set -e

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
        ;;
    bound|renew)
        case "$mask" in
            ''|*.*) prefix=$(mask_to_prefix "${{subnet:-$mask}}") ;;
            *) prefix=$mask ;;
        esac
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$prefix" dev "$interface"
        first_router=""
        for r in $router; do first_router=$r; break; done
        if [ -n "$first_router" ]; then
            ip route replace default via "$first_router" dev "$interface"
        fi
        printf 'ip=%s\nmask=%s\nrouter=%s\ndns=%s\ndomain=%s\nserver=%s\n' \
            "$ip" "$prefix" "$first_router" "$dns" "$domain" "$serverid" > "{result}.tmp"
        mv "{result}.tmp" "{result}"
        ;;
esac
exit 0
"#
    )
}

/// Parses the `key=value` file written by the udhcpc script.
pub(crate) fn parse_lease(text: &str) -> Result<Lease> {
    let what = "the udhcpc result file";
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .unwrap_or("")
    };
    let addr = |key: &str, value: &str| {
        value.parse::<Ipv4Addr>().map_err(|_| {
            Error::parse(
                what,
                format!("{key}={value:?} is not an IPv4 address"),
                text,
            )
        })
    };
    let ip = addr("ip", field("ip"))?;
    let prefix_len = field("mask")
        .parse::<u8>()
        .ok()
        .filter(|&p| p <= 32)
        .ok_or_else(|| Error::parse(what, "mask is not a prefix length", text))?;
    let router = match field("router") {
        "" => None,
        r => Some(addr("router", r)?),
    };
    let dns = field("dns")
        .split_whitespace()
        .map(|d| addr("dns", d))
        .collect::<Result<_>>()?;
    let domain = Some(field("domain").to_owned()).filter(|d| !d.is_empty());
    let server = match field("server") {
        "" => None,
        s => Some(addr("server", s)?),
    };
    Ok(Lease {
        ip,
        prefix_len,
        router,
        dns,
        domain,
        server,
    })
}

impl Lab {
    /// Starts dnsmasq in `ns` with `config` and waits until it serves DHCP.
    ///
    /// The configuration file and lease database live in the lab directory; dnsmasq runs
    /// in the foreground (`--no-daemon` writes no pid file), tracked by its spawned pid.
    pub fn dnsmasq(&self, ns: &Netns, config: &DnsmasqConfig) -> Result<Dnsmasq> {
        let conf_file = self.new_file("dnsmasq", "conf")?;
        let lease_file = conf_file.with_extension("leases");
        let conf = config.render(&lease_file)?;
        fs::write(&conf_file, conf)
            .map_err(|e| Error::io(format!("writing {}", conf_file.display()), e))?;
        let stem = conf_file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("dnsmasq")
            .to_owned();
        let conf_arg = format!("--conf-file={}", conf_file.display());
        let process = self.spawn(
            ns,
            &stem,
            &["dnsmasq", "--no-daemon", &conf_arg, "--pid-file="],
        )?;
        // Logged once the DHCP socket is set up; configuration errors exit before it.
        process.wait_for_log("DHCP, IP range", DNSMASQ_READY)?;
        Ok(Dnsmasq {
            process,
            conf_file,
            lease_file,
        })
    }

    /// Runs `busybox udhcpc` once on `ifname` in `ns` and returns the lease it got.
    ///
    /// The generated script configures the address and default route inside `ns` before
    /// this returns. Fails if no lease is obtained within `timeout`.
    pub fn dhcp_client(&self, ns: &Netns, ifname: &str, timeout: Duration) -> Result<Lease> {
        check_ifname(ifname)?;
        let script = self.new_file(&format!("udhcpc-{ifname}"), "sh")?;
        let result = script.with_extension("lease");
        fs::write(&script, udhcpc_script(&result))
            .and_then(|()| fs::set_permissions(&script, fs::Permissions::from_mode(0o755)))
            .map_err(|e| Error::io(format!("writing {}", script.display()), e))?;
        let script_arg = script.display().to_string();
        // -f foreground, -n fail instead of backgrounding, -q quit once bound,
        // -t/-T: five discovers one second apart.
        let argv = [
            "busybox",
            "udhcpc",
            "-i",
            ifname,
            "-f",
            "-n",
            "-q",
            "-t",
            "5",
            "-T",
            "1",
            "-s",
            &script_arg,
        ];
        self.exec_timeout(ns, &argv, timeout)?;
        let text = fs::read_to_string(&result).map_err(|e| {
            Error::io(
                format!(
                    "udhcpc succeeded but its script left no {}",
                    result.display()
                ),
                e,
            )
        })?;
        parse_lease(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_with_every_field() {
        let text = "ip=10.201.0.50\nmask=24\nrouter=10.201.0.1\n\
                    dns=10.201.0.53 10.201.0.54\ndomain=lab.test\n";
        assert_eq!(
            parse_lease(text).unwrap(),
            Lease {
                ip: "10.201.0.50".parse().unwrap(),
                prefix_len: 24,
                router: Some("10.201.0.1".parse().unwrap()),
                dns: vec![
                    "10.201.0.53".parse().unwrap(),
                    "10.201.0.54".parse().unwrap()
                ],
                domain: Some("lab.test".into()),
                server: None,
            }
        );
    }

    #[test]
    fn lease_with_only_an_address() {
        let lease = parse_lease("ip=10.0.0.9\nmask=16\nrouter=\ndns=\ndomain=\n").unwrap();
        assert_eq!(lease.prefix_len, 16);
        assert_eq!(
            (lease.router, lease.dns.len(), lease.domain),
            (None, 0, None)
        );
    }

    #[test]
    fn lease_with_a_dotted_or_missing_mask_is_rejected() {
        assert!(parse_lease("ip=10.0.0.9\nmask=255.255.255.0\n").is_err());
        assert!(parse_lease("ip=10.0.0.9\n").is_err());
        assert!(parse_lease("ip=nope\nmask=24\n").is_err());
    }

    #[test]
    fn dnsmasq_config_has_range_options_and_static_hosts() {
        let mut config = DnsmasqConfig::new(
            "eth0",
            "10.201.0.100".parse().unwrap(),
            "10.201.0.150".parse().unwrap(),
            "255.255.255.0".parse().unwrap(),
        );
        config.router = Some("10.201.0.1".parse().unwrap());
        config.domain = Some("lab.test".into());
        config.hosts.push((
            "02:00:0a:c9:00:32".into(),
            "10.201.0.50".parse().unwrap(),
            "c1".into(),
        ));
        let conf = config.render(Path::new("/tmp/x.leases")).unwrap();
        for line in [
            "interface=eth0",
            "bind-interfaces",
            "port=0",
            "dhcp-leasefile=/tmp/x.leases",
            "dhcp-range=10.201.0.100,10.201.0.150,255.255.255.0,3600s",
            "dhcp-option=option:router,10.201.0.1",
            "dhcp-option=option:domain-name,lab.test",
            "dhcp-host=02:00:0a:c9:00:32,10.201.0.50,c1",
        ] {
            assert!(
                conf.lines().any(|l| l == line),
                "{line:?} missing from\n{conf}"
            );
        }
        config.hosts.push((
            "bad mac".into(),
            "10.201.0.51".parse().unwrap(),
            "c2".into(),
        ));
        assert!(config.render(Path::new("/tmp/x.leases")).is_err());
    }
}

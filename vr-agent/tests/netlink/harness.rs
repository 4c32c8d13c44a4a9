//! The harness of the netlink kernel tests: a private namespace per test
//! thread, commands run inside it, and independent views through `ip -j`.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

use super::json::{self, Json, JsonExt};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the netlink tests create links, routes and rules in private network namespaces \
         and must run as root (euid is {euid}); run `sudo -E cargo test -p vr-agent --test netlink`"
    );
}

fn netns_id(path: &str) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.dev(), meta.ino())
}

/// Host values read from the test's own thread, which stays in the host
/// namespace; a test must leave them as they were.
fn host_sysctls() -> Vec<String> {
    ["net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter"]
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/sys/{p}")).unwrap_or_default())
        .collect()
}

/// Runs `test` on a new thread inside a new network namespace, on a
/// current-thread tokio runtime created there.
pub fn in_netns<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    require_root();
    let host_before = host_sysctls();
    let thread = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        // /proc/self is the process (its main thread stays in the host
        // namespace); /proc/thread-self is this thread.
        assert_ne!(
            netns_id("/proc/thread-self/ns/net"),
            netns_id("/proc/self/ns/net"),
            "refusing to run: the test thread is still in the process's namespace"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(test());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(host_sysctls(), host_before, "the host's sysctls changed");
}

/// Runs a command in the calling thread's namespace and returns its stdout.
fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `ip <args>` (split on whitespace).
pub fn ip(args: &str) -> String {
    let mut argv = vec!["ip"];
    argv.extend(args.split_whitespace());
    run(&argv)
}

/// `ip -j <args>`, parsed.
fn ip_json(args: &str) -> Json {
    let text = ip(&format!("-j {args}"));
    if text.trim().is_empty() {
        Json::Array(Vec::new())
    } else {
        json::parse(&text)
    }
}

/// (name, MTU, up) of the link with `mac`.
pub fn link_by_mac(mac: &str) -> (String, i64, bool) {
    let links = ip_json("link show");
    let link = links
        .items()
        .iter()
        .find(|l| l.str("address") == Some(mac))
        .unwrap_or_else(|| panic!("no link {mac}"));
    let up = link
        .get("flags")
        .is_some_and(|f| f.items().iter().any(|x| x.as_str() == Some("UP")));
    (
        link.str("ifname").unwrap().to_string(),
        link.num("mtu").unwrap() as i64,
        up,
    )
}

/// The IPv4 addresses of `dev` as "a.b.c.d/len".
pub fn addresses(dev: &str) -> Vec<String> {
    let out = ip_json(&format!("-4 addr show dev {dev}"));
    out.items()
        .iter()
        .flat_map(|l| {
            l.get("addr_info")
                .map(|a| a.items().to_vec())
                .unwrap_or_default()
        })
        .map(|a| {
            format!(
                "{}/{}",
                a.str("local").unwrap(),
                a.num("prefixlen").unwrap()
            )
        })
        .collect()
}

/// The routes of `table` as one line each: "[type ]dst[ via gw][ dev d] proto p".
pub fn routes(table: &str) -> BTreeSet<String> {
    ip_json(&format!("-4 route show table {table}"))
        .items()
        .iter()
        .map(|r| {
            let mut line = String::new();
            if let Some(kind) = r.str("type") {
                line.push_str(&format!("{kind} "));
            }
            line.push_str(r.str("dst").unwrap());
            if let Some(gw) = r.str("gateway") {
                line.push_str(&format!(" via {gw}"));
            }
            if let Some(dev) = r.str("dev") {
                line.push_str(&format!(" dev {dev}"));
            }
            // `ip` leaves out the default protocol, boot.
            line.push_str(&format!(" proto {}", r.str("protocol").unwrap_or("boot")));
            line
        })
        .collect()
}

pub fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

/// The IPv4 rules with a priority in the agent's range, as
/// "priority fwmark table".
pub fn owned_rules() -> Vec<String> {
    ip_json("-4 rule show")
        .items()
        .iter()
        .filter(|r| (1000..2000).contains(&(r.num("priority").unwrap() as i64)))
        .map(|r| {
            let mark = r.str("fwmark").unwrap_or("-");
            format!(
                "{} {} {}",
                r.num("priority").unwrap(),
                mark,
                r.str("table").unwrap_or("-")
            )
        })
        .collect()
}

pub fn sysctl(name: &str) -> String {
    // Read by a child process: it inherits the thread's namespace.
    run(&["cat", &format!("/proc/sys/{}", name.replace('.', "/"))])
        .trim()
        .to_string()
}

/// A route lookup with a firewall mark, as the kernel would route a reply.
pub fn route_get(args: &str) -> String {
    ip(&format!("-4 route get {args}"))
}

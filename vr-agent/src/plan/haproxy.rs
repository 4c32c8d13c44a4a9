//! HAProxy's configuration for the load balancer rules the in-kernel
//! balancer cannot serve: least connections (the kernel keeps no count of a
//! backend's open connections) and cookie stickiness (the kernel does not
//! read HTTP). Pure: router in, file text out; `None` when no rule needs
//! HAProxy, so a router without such rules runs no proxy at all.
//!
//! Every value written here was validated by [`crate::model`] into a type
//! or a token without spaces, quotes, `#` or line breaks, so nothing needs
//! escaping: an address, a port, a cookie name, a number with a unit.

use std::fmt::Write;

use crate::model::{Algorithm, CookieMode, LoadBalancer, Router, Stickiness, UrlMode};

/// The configuration file's name in the proxy's directory.
pub const CONFIG_FILE: &str = "haproxy.cfg";

/// Timeouts as CloudStack's VR sets them (connect 5 s, client and server
/// 50 s of inactivity).
const DEFAULTS: &str = "defaults
    timeout connect 5s
    timeout client 50s
    timeout server 50s
";

/// The configuration for `router`'s proxied rules; `user` and `group` are
/// what the workers drop to once they hold their sockets.
pub fn plan(router: &Router, user: &str, group: &str) -> Option<String> {
    let rules: Vec<(usize, &LoadBalancer)> = router
        .load_balancers
        .iter()
        .enumerate()
        .filter(|(_, lb)| lb.needs_proxy() && !lb.backends.is_empty())
        .collect();
    if rules.is_empty() {
        return None;
    }
    let mut out = String::from("# Written by vr-agent; rewritten on every change.\n");
    let _ = write!(
        out,
        "global\n    maxconn 4096\n    user {user}\n    group {group}\n\n{DEFAULTS}"
    );
    for (index, lb) in rules {
        out.push('\n');
        listen(&mut out, index, lb);
    }
    Some(out)
}

/// One `listen` section: the rule's public address and port in, its
/// backends out.
fn listen(out: &mut String, index: usize, lb: &LoadBalancer) {
    let http = matches!(
        lb.stickiness,
        Some(Stickiness::LbCookie { .. } | Stickiness::AppCookie { .. })
    );
    let balance = match lb.algorithm {
        Algorithm::RoundRobin => "roundrobin",
        Algorithm::SourceHash => "source",
        Algorithm::LeastConn => "leastconn",
    };
    let _ = writeln!(out, "# rule {}", lb.id);
    let _ = writeln!(out, "listen lb_{index}");
    let _ = writeln!(out, "    bind {}:{}", lb.public_ip, lb.public_port);
    let _ = writeln!(out, "    mode {}", if http { "http" } else { "tcp" });
    let _ = writeln!(out, "    balance {balance}");
    let mut cookies = false;
    match &lb.stickiness {
        Some(Stickiness::LbCookie {
            cookie,
            mode,
            nocache,
            indirect,
            postonly,
            domain,
        }) => {
            cookies = true;
            let mode = match mode {
                CookieMode::Insert => "insert",
                CookieMode::Rewrite => "rewrite",
                CookieMode::Prefix => "prefix",
            };
            let _ = write!(out, "    cookie {cookie} {mode}");
            for (on, word) in [
                (*nocache, "nocache"),
                (*indirect, "indirect"),
                (*postonly, "postonly"),
            ] {
                if on {
                    let _ = write!(out, " {word}");
                }
            }
            if let Some(domain) = domain {
                let _ = write!(out, " domain {domain}");
            }
            out.push('\n');
        }
        Some(Stickiness::AppCookie {
            cookie,
            length,
            holdtime,
            request_learn,
            mode,
        }) => {
            // HAProxy 2 has no `appsession`: a stick table keyed on the
            // application's cookie does the same (learned from responses,
            // and from requests with request-learn).
            let _ = writeln!(
                out,
                "    stick-table type string len {length} size 200k expire {holdtime}"
            );
            let _ = writeln!(out, "    stick store-response res.cook({cookie})");
            let _ = writeln!(out, "    stick match req.cook({cookie})");
            if *request_learn {
                let _ = writeln!(out, "    stick store-request req.cook({cookie})");
            }
            let param = match mode {
                UrlMode::PathParameters => format!("url_param({cookie},;)"),
                UrlMode::QueryString => format!("url_param({cookie})"),
            };
            let _ = writeln!(out, "    stick match {param}");
        }
        Some(Stickiness::SourceBased { table_size, expire }) => {
            let _ = writeln!(
                out,
                "    stick-table type ip size {table_size} expire {expire}"
            );
            let _ = writeln!(out, "    stick on src");
        }
        None => {}
    }
    for (ip, port) in &lb.backends {
        let name = format!("{}-{port}", ip.to_string().replace('.', "_"));
        let _ = write!(out, "    server {name} {ip}:{port}");
        if cookies {
            let _ = write!(out, " cookie {name}");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::L4;

    fn rule(algorithm: Algorithm, stickiness: Option<Stickiness>) -> LoadBalancer {
        LoadBalancer {
            id: "lb-1".into(),
            public_ip: "203.0.113.11".parse().unwrap(),
            protocol: L4::Tcp,
            public_port: 80,
            algorithm,
            backends: vec![
                ("10.1.1.5".parse().unwrap(), 8080),
                ("10.1.2.5".parse().unwrap(), 8081),
            ],
            sources: Vec::new(),
            stickiness,
        }
    }

    fn router(rules: Vec<LoadBalancer>) -> Router {
        Router {
            load_balancers: rules,
            ..Router::default()
        }
    }

    #[test]
    fn kernel_rules_need_no_proxy() {
        let r = router(vec![
            rule(Algorithm::RoundRobin, None),
            rule(
                Algorithm::SourceHash,
                Some(Stickiness::SourceBased {
                    table_size: "200k".into(),
                    expire: "30m".into(),
                }),
            ),
        ]);
        assert_eq!(plan(&r, "nobody", "nogroup"), None);
    }

    #[test]
    fn leastconn_rule_listens_on_its_public_port_in_tcp_mode() {
        let r = router(vec![
            rule(Algorithm::RoundRobin, None),
            rule(Algorithm::LeastConn, None),
        ]);
        let cfg = plan(&r, "nobody", "nogroup").unwrap();
        assert!(!cfg.contains("listen lb_0"), "{cfg}");
        assert!(
            cfg.contains(
                "listen lb_1\n    bind 203.0.113.11:80\n    mode tcp\n    balance leastconn\n"
            ),
            "{cfg}"
        );
        assert!(
            cfg.contains("    server 10_1_1_5-8080 10.1.1.5:8080\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("    user nobody\n    group nogroup\n"),
            "{cfg}"
        );
    }

    #[test]
    fn lb_cookie_inserts_a_cookie_naming_each_backend() {
        let r = router(vec![rule(
            Algorithm::RoundRobin,
            Some(Stickiness::LbCookie {
                cookie: "SRV".into(),
                mode: CookieMode::Insert,
                nocache: true,
                indirect: true,
                postonly: false,
                domain: Some(".example.org".into()),
            }),
        )]);
        let cfg = plan(&r, "nobody", "nogroup").unwrap();
        assert!(
            cfg.contains("    mode http\n    balance roundrobin\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("    cookie SRV insert nocache indirect domain .example.org\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("    server 10_1_2_5-8081 10.1.2.5:8081 cookie 10_1_2_5-8081\n"),
            "{cfg}"
        );
    }

    #[test]
    fn app_cookie_becomes_a_stick_table_on_the_cookie() {
        let r = router(vec![rule(
            Algorithm::LeastConn,
            Some(Stickiness::AppCookie {
                cookie: "JSESSIONID".into(),
                length: 52,
                holdtime: "3h".into(),
                request_learn: true,
                mode: UrlMode::QueryString,
            }),
        )]);
        let cfg = plan(&r, "nobody", "nogroup").unwrap();
        assert!(
            cfg.contains("stick-table type string len 52 size 200k expire 3h\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("stick store-request req.cook(JSESSIONID)\n"),
            "{cfg}"
        );
        assert!(cfg.contains("stick match url_param(JSESSIONID)\n"), "{cfg}");
    }
}

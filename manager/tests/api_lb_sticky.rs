//! Load balancer algorithms and stickiness policies through the HTTP API, on
//! SQLite and PostgreSQL (issue 15): leastconn accepted for TCP and refused
//! for UDP; createLBStickinessPolicy, listLBStickinessPolicies and
//! deleteLBStickinessPolicy with CloudStack's parameters, checks, texts and
//! response; the policy reaching the router inside its rule; a refused push
//! undoing the change; ownership.

mod support;

use support::api::{BOGUS, Client, TestManager, job_ok, on_both_backends, refused, run_job};
use support::vpc::{create_vpc, deploy_vm_addr as deploy, user, zone_env};
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_proto::v1 as pb;

/// A refused call: its parameters, the expected code and a piece of the text.
type Case = (Vec<(String, String)>, u16, String);

/// The load balancer list of the last SetLoadBalancerRules sent.
fn last_lb_rules(m: &TestManager) -> Vec<pb::LoadBalancerRule> {
    m.agent
        .commands()
        .into_iter()
        .filter_map(|c| match c {
            AgentCommand::SetLoadBalancerRules(r) => Some(r.rules),
            _ => None,
        })
        .next_back()
        .expect("a SetLoadBalancerRules")
}

/// A VPC with a tier, a VM and a public address; returns (tier, vm, ip id).
async fn setup(m: &TestManager, owner: &Client) -> (String, String, String) {
    let admin = m.admin();
    let env = zone_env(&admin, "stz").await;
    let vpc = create_vpc(owner, &env, "st-vpc", "10.9.0.0/16").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let web = owner
        .ok(
            "createNetwork",
            &[
                ("name", "web"),
                ("displaytext", "web"),
                ("zoneid", &env.zone),
                ("vpcid", &vpc),
                ("networkofferingid", &env.tier_offering_lb),
                ("gateway", "10.9.1.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let vm = deploy(owner, &env, &web, "vm1").await.0;
    let ip = job_ok(owner, "associateIpAddress", &[("vpcid", &vpc)]).await["ipaddress"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (web, vm, ip)
}

async fn create_rule(
    client: &Client,
    tier: &str,
    ip: &str,
    algorithm: &str,
    port: &str,
    protocol: &str,
) -> String {
    job_ok(
        client,
        "createLoadBalancerRule",
        &[
            ("name", &format!("r{port}")),
            ("algorithm", algorithm),
            ("publicport", port),
            ("privateport", "8080"),
            ("publicipid", ip),
            ("networkid", tier),
            ("protocol", protocol),
        ],
    )
    .await["loadbalancer"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

on_both_backends!(
    leastconn_reaches_the_router_for_tcp_and_is_refused_for_udp,
    |m| {
        let admin = m.admin();
        let ann = user(&admin, "ann").await;
        let (tier, vm, ip) = setup(m, &ann).await;
        m.agent.clear();
        let rule = create_rule(&ann, &tier, &ip, "leastconn", "80", "tcp").await;
        job_ok(
            &ann,
            "assignToLoadBalancerRule",
            &[("id", &rule), ("virtualmachineids", &vm)],
        )
        .await;
        let sent = last_lb_rules(m);
        assert_eq!(sent[0].algorithm, pb::LbAlgorithm::LeastConn as i32);
        assert_eq!(sent[0].backends.len(), 1);
        let listed = ann.ok("listLoadBalancerRules", &[("id", &rule)]).await;
        assert_eq!(listed["loadbalancerrule"][0]["algorithm"], "leastconn");

        let (code, text) = refused(
            &ann,
            "createLoadBalancerRule",
            &[
                ("name", "u"),
                ("algorithm", "leastconn"),
                ("publicport", "53"),
                ("privateport", "53"),
                ("publicipid", &ip),
                ("networkid", &tier),
                ("protocol", "udp"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("leastconn balances tcp only"), "{text}");
        // A UDP rule may not become leastconn either.
        let udp = create_rule(&ann, &tier, &ip, "source", "54", "udp").await;
        let (code, text) = refused(
            &ann,
            "updateLoadBalancerRule",
            &[("id", &udp), ("algorithm", "leastconn")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("leastconn balances tcp only"), "{text}");
        // A TCP rule may.
        job_ok(
            &ann,
            "updateLoadBalancerRule",
            &[("id", &rule), ("algorithm", "roundrobin")],
        )
        .await;
        job_ok(
            &ann,
            "updateLoadBalancerRule",
            &[("id", &rule), ("algorithm", "leastconn")],
        )
        .await;
        assert_eq!(
            last_lb_rules(m)[0].algorithm,
            pb::LbAlgorithm::LeastConn as i32
        );
    }
);

on_both_backends!(
    a_stickiness_policy_is_created_listed_pushed_and_deleted,
    |m| {
        let admin = m.admin();
        let bo = user(&admin, "bo").await;
        let cy = user(&admin, "cy").await;
        let (tier, vm, ip) = setup(m, &bo).await;
        let rule = create_rule(&bo, &tier, &ip, "roundrobin", "80", "tcp").await;
        job_ok(
            &bo,
            "assignToLoadBalancerRule",
            &[("id", &rule), ("virtualmachineids", &vm)],
        )
        .await;
        m.agent.clear();

        let started = bo
            .ok(
                "createLBStickinessPolicy",
                &[
                    ("lbruleid", &rule),
                    ("name", "sticky"),
                    ("methodname", "LbCookie"),
                    ("description", "keep sessions"),
                    ("param[0].name", "cookie-name"),
                    ("param[0].value", "SRV"),
                    ("param[1].name", "nocache"),
                    ("param[1].value", "true"),
                ],
            )
            .await;
        let policy = started["id"].as_str().expect("async-create id").to_string();
        let done = bo.wait_job(started["jobid"].as_str().unwrap()).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let sp = &done["jobresult"]["stickinesspolicies"];
        assert_eq!(sp["lbruleid"], rule.as_str());
        assert_eq!(sp["name"], "r80");
        assert_eq!(sp["account"], "bo");
        let p = &sp["stickinesspolicy"][0];
        assert_eq!(p["id"], policy.as_str());
        assert_eq!(p["name"], "sticky");
        assert_eq!(p["methodname"], "LbCookie");
        assert_eq!(p["description"], "keep sessions");
        assert_eq!(p["params"]["cookie-name"], "SRV");
        assert_eq!(p["params"]["nocache"], "true");
        assert_eq!(p["state"], "Active");
        assert_eq!(p["fordisplay"], true);

        // The router gets the rule with its policy.
        let sent = last_lb_rules(m);
        let sticky = sent[0]
            .stickiness
            .as_ref()
            .expect("the policy reaches the router");
        assert_eq!(sticky.method, pb::LbStickinessMethod::LbCookie as i32);
        assert_eq!(
            sticky.params.get("cookie-name").map(String::as_str),
            Some("SRV")
        );

        // Listed by rule and by policy id: one entry for the rule.
        for params in [[("lbruleid", rule.as_str())], [("id", policy.as_str())]] {
            let listed = bo.ok("listLBStickinessPolicies", &params).await;
            assert_eq!(listed["count"], 1, "{listed}");
            assert_eq!(
                listed["stickinesspolicies"][0]["stickinesspolicy"][0]["id"],
                policy.as_str()
            );
        }

        // Refusals, with nothing sent.
        m.agent.clear();
        let create = |method: &'static str, pairs: &'static [(&'static str, &'static str)]| {
            let mut p: Vec<(String, String)> = vec![
                ("lbruleid".into(), rule.clone()),
                ("name".into(), "second".into()),
                ("methodname".into(), method.into()),
            ];
            for (i, (n, v)) in pairs.iter().enumerate() {
                p.push((format!("param[{i}].name"), n.to_string()));
                p.push((format!("param[{i}].value"), v.to_string()));
            }
            p
        };
        let cases: Vec<Case> = vec![
            (
                create("SourceBased", &[]),
                431,
                format!("Failed to create Stickiness policy: Already policy attached {rule}"),
            ),
            (
                create("Cookie", &[]),
                431,
                format!("Failed to match Stickiness method name for LB rule:{rule}"),
            ),
            (
                create("LbCookie", &[("holdtime", "3h")]),
                431,
                "Failed : Stickiness policy does not support param name :holdtime".into(),
            ),
            (
                create("SourceBased", &[("expire", "soon")]),
                431,
                format!(
                    "Failed LB in validation rule id: {rule} Cause: expire is not in timeformat: soon"
                ),
            ),
            (
                create("LbCookie", &[("cookie-name", "a b")]),
                431,
                "cookie-name is not a cookie name".into(),
            ),
            (
                vec![
                    ("lbruleid".into(), BOGUS.into()),
                    ("name".into(), "x".into()),
                    ("methodname".into(), "LbCookie".into()),
                ],
                431,
                "lbruleid".into(),
            ),
        ];
        for (params, code, text) in cases {
            let p: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (got, body) = refused(&bo, "createLBStickinessPolicy", &p).await;
            assert_eq!(got, code, "{body}");
            assert!(body.contains(&text), "{text} in {body}");
        }
        let (code, text) = refused(&bo, "listLBStickinessPolicies", &[]).await;
        assert_eq!(code, 431);
        assert!(text.contains("can't be null"), "{text}");
        let (code, _) = refused(&cy, "listLBStickinessPolicies", &[("lbruleid", &rule)]).await;
        assert_eq!(code, 531);
        let (code, _) = refused(&cy, "deleteLBStickinessPolicy", &[("id", &policy)]).await;
        assert_eq!(code, 531);
        assert!(m.agent.commands().is_empty(), "refusals send nothing");

        // The router refuses the delete: the policy stays.
        m.agent
            .fail("SetLoadBalancerRules", AgentError::Failed("haproxy".into()));
        let failed = run_job(&bo, "deleteLBStickinessPolicy", &[("id", &policy)]).await;
        assert_eq!(failed["jobstatus"], 2, "{failed}");
        let listed = bo
            .ok("listLBStickinessPolicies", &[("lbruleid", &rule)])
            .await;
        assert_eq!(
            listed["stickinesspolicies"][0]["stickinesspolicy"][0]["id"],
            policy.as_str()
        );

        // Deleted: the router gets the rule without it, the list is empty.
        m.agent.unfail("SetLoadBalancerRules");
        m.agent.clear();
        job_ok(&bo, "deleteLBStickinessPolicy", &[("id", &policy)]).await;
        assert!(last_lb_rules(m)[0].stickiness.is_none());
        let listed = bo
            .ok("listLBStickinessPolicies", &[("lbruleid", &rule)])
            .await;
        assert_eq!(listed["count"], 1);
        assert_eq!(
            listed["stickinesspolicies"][0]["stickinesspolicy"]
                .as_array()
                .map(Vec::len),
            Some(0)
        );
        let (code, text) = refused(&bo, "deleteLBStickinessPolicy", &[("id", &policy)]).await;
        assert_eq!(code, 431);
        assert!(text.contains("Invalid parameter id"), "{text}");

        // The router refuses a new policy: it is removed again.
        m.agent
            .fail("SetLoadBalancerRules", AgentError::Failed("haproxy".into()));
        let failed = run_job(
            &bo,
            "createLBStickinessPolicy",
            &[
                ("lbruleid", &rule),
                ("name", "s2"),
                ("methodname", "SourceBased"),
            ],
        )
        .await;
        assert_eq!(failed["jobstatus"], 2, "{failed}");
        m.agent.unfail("SetLoadBalancerRules");
        let listed = bo
            .ok("listLBStickinessPolicies", &[("lbruleid", &rule)])
            .await;
        assert_eq!(
            listed["stickinesspolicies"][0]["stickinesspolicy"]
                .as_array()
                .map(Vec::len),
            Some(0)
        );
        // Cookies are refused on a UDP rule; SourceBased is not.
        let udp = create_rule(&bo, &tier, &ip, "source", "54", "udp").await;
        let (code, text) = refused(
            &bo,
            "createLBStickinessPolicy",
            &[
                ("lbruleid", &udp),
                ("name", "c"),
                ("methodname", "AppCookie"),
            ],
        )
        .await;
        assert_eq!(code, 431);
        assert!(text.contains("needs http over tcp"), "{text}");
        let sp = job_ok(
            &bo,
            "createLBStickinessPolicy",
            &[
                ("lbruleid", &udp),
                ("name", "s"),
                ("methodname", "SourceBased"),
            ],
        )
        .await;
        let sp_id = sp["stickinesspolicies"]["stickinesspolicy"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        // Deleting the rule deletes its policy.
        job_ok(&bo, "deleteLoadBalancerRule", &[("id", &udp)]).await;
        let (code, text) = refused(&bo, "listLBStickinessPolicies", &[("id", &sp_id)]).await;
        assert_eq!(code, 431);
        assert!(
            text.contains("stickiness policy ID doesn't exist"),
            "{text}"
        );
    }
);

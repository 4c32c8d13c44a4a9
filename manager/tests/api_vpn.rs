//! Site-to-site VPN through the HTTP API, on SQLite and PostgreSQL:
//! CloudStack's checks of customer gateways and connections with its texts,
//! the VPN the router is sent (SetVpn with the generation), connection
//! states (Connected, Disconnected when passive, Error with the router's
//! reason), reset, the refusals of deleting what a connection uses,
//! ownership (and who sees the pre-shared key), and removal with the VPC and
//! the account.

mod support;

use serde_json::Value;
use support::api::{BOGUS, Client, TestManager, on_both_backends, refused, run_job};
use support::vpc::{Env, create_vpc, user, zone_env};
use vpc_manager::orchestration::{AgentCommand, AgentError};
use vpc_proto::v1 as pb;

/// Runs an async-create command to its end: its id and the finished job.
async fn create(client: &Client, command: &str, params: &[(&str, &str)]) -> (String, Value) {
    let accepted = client.ok(command, params).await;
    let id = accepted["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}: no id in {accepted}"))
        .to_string();
    let job = client
        .wait_job(accepted["jobid"].as_str().expect("jobid"))
        .await;
    (id, job)
}

/// The last customer gateway's key as the database holds it.
async fn stored_psk(url: &str) -> String {
    use vpc_manager::store::Db;
    const SQL: &str = "SELECT ipsec_psk FROM s2s_customer_gateway ORDER BY id DESC LIMIT 1";
    let db = Db::connect(url).await.expect("database");
    let stored: String = match &db {
        Db::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(SQL).fetch_one(pool).await,
    }
    .expect("a customer gateway");
    db.close().await;
    stored
}

/// createVpnCustomerGateway's parameters with `extra` replacing or adding.
fn customer<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("gateway", "198.51.100.20"),
        ("cidrlist", "10.9.0.0/16"),
        ("ipsecpsk", "open sesame"),
        ("ikepolicy", "aes128-sha1;modp1536"),
        ("esppolicy", "aes128-sha1"),
    ];
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        p.push((k, v));
    }
    p
}

/// The SetVpn requests sent since the agent was cleared.
fn set_vpns(m: &TestManager) -> Vec<pb::SetVpnRequest> {
    m.agent
        .commands()
        .into_iter()
        .filter_map(|c| match c {
            AgentCommand::SetVpn(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// A VPC of `client` with its VPN gateway: (VPC id, gateway id, public IP).
async fn vpc_with_gateway(
    client: &Client,
    env: &Env,
    name: &str,
    cidr: &str,
) -> (String, String, String) {
    let vpc = create_vpc(client, env, name, cidr).await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let (gw, job) = create(client, "createVpnGateway", &[("vpcid", &vpc_id)]).await;
    assert_eq!(job["jobstatus"], 1, "{job}");
    let view = &job["jobresult"]["vpngateway"];
    assert_eq!(view["id"], gw.as_str());
    assert_eq!(view["vpcid"], vpc_id.as_str());
    let ip = view["publicip"].as_str().unwrap().to_string();
    (vpc_id, gw, ip)
}

on_both_backends!(
    customer_gateways_are_checked_as_cloudstack_checks_them,
    |m, url| {
        let admin = m.admin();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("gateway", "300.1.2.3")],
                "The customer gateway ip/Domain 300.1.2.3 is invalid!",
            ),
            (
                &[("cidrlist", "10.9.0.0/16,10.10.0.0")],
                "The customer gateway peer cidr list 10.9.0.0/16,10.10.0.0 contains an invalid cidr!",
            ),
            (
                &[("ikepolicy", "aes128-sha1")],
                "The customer gateway IKE policy aes128-sha1 is invalid!  Verify the required Diffie Hellman (DH) group is specified.",
            ),
            (
                &[("esppolicy", "aes128-sha7")],
                "The customer gateway ESP policy aes128-sha7 is invalid!",
            ),
            (
                &[("ikelifetime", "86401")],
                "The IKE lifetime 86401 of vpn connection is invalid!",
            ),
            (
                &[("esplifetime", "90000")],
                "The ESP lifetime 90000 of vpn connection is invalid!",
            ),
            (
                &[("cidrlist", "10.9.0.0/16,10.9.4.0/24")],
                "The subnet of customer gateway 10.9.0.0/16 is overlapped with another subnet 10.9.4.0/24 of customer gateway!",
            ),
            (
                &[("ipsecpsk", "bad\"key")],
                "The IPsec pre-shared key cannot contain newline, double quotes, backslashes or control characters",
            ),
            (
                &[("ikeversion", "ikev3")],
                "The IKE version ikev3 is invalid: use one of ike, ikev1, ikev2",
            ),
        ];
        for (extra, text) in cases {
            let (code, got) = refused(&admin, "createVpnCustomerGateway", &customer(extra)).await;
            assert_eq!((code, got.as_str()), (431, *text), "{extra:?}");
        }
        let listed = admin.ok("listVpnCustomerGateways", &[]).await;
        assert_eq!(
            listed["count"].as_u64().unwrap_or(0),
            0,
            "nothing stored: {listed}"
        );

        // CloudStack's defaults: the name, the lifetimes, the IKE version.
        let (cg, job) = create(&admin, "createVpnCustomerGateway", &customer(&[])).await;
        let view = &job["jobresult"]["vpncustomergateway"];
        assert_eq!(view["id"], cg.as_str());
        assert_eq!(view["name"], "VPN-198.51.100.20");
        assert_eq!(view["ikelifetime"], 86400);
        assert_eq!(view["esplifetime"], 3600);
        assert_eq!(view["ikeversion"], "ike");
        assert_eq!(view["dpd"], false);
        assert_eq!(view["forceencap"], false);
        assert_eq!(view["ipsecpsk"], "open sesame", "its owner sees the key");
        let stored = stored_psk(url).await;
        assert!(
            vpc_manager::store::secret::is_sealed(&stored) && !stored.contains("sesame"),
            "the key is sealed at rest: {stored}"
        );
        let (code, text) = refused(&admin, "createVpnCustomerGateway", &customer(&[])).await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "The customer gateway with name VPN-198.51.100.20 already existed!"
            )
        );

        // An update gives every value again and is checked the same way.
        let (code, _) = refused(
            &admin,
            "updateVpnCustomerGateway",
            &[
                &[("id", cg.as_str())][..],
                &customer(&[("ikepolicy", "aes128-sha1")]),
            ]
            .concat(),
        )
        .await;
        assert_eq!(code, 431);
        let done = run_job(
            &admin,
            "updateVpnCustomerGateway",
            &[
                &[("id", cg.as_str())][..],
                &customer(&[
                    ("name", "office"),
                    ("dpd", "true"),
                    ("ikelifetime", "28800"),
                ]),
            ]
            .concat(),
        )
        .await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let view = &done["jobresult"]["vpncustomergateway"];
        assert_eq!(view["name"], "office");
        assert_eq!(view["dpd"], true);
        assert_eq!(view["ikelifetime"], 28800);
        let (code, _) = refused(&admin, "deleteVpnCustomerGateway", &[("id", BOGUS)]).await;
        assert_eq!(code, 431);
        let done = run_job(&admin, "deleteVpnCustomerGateway", &[("id", &cg)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let listed = admin.ok("listVpnCustomerGateways", &[]).await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0);
    }
);

on_both_backends!(
    a_connection_reaches_the_router_and_follows_its_answers,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "vpnz").await;
        let (vpc, gw, public_ip) = vpc_with_gateway(&admin, &env, "vpn-a", "10.1.0.0/16").await;
        let (code, text) = refused(&admin, "createVpnGateway", &[("vpcid", &vpc)]).await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                format!("The VPN gateway of VPC {vpc} already existed!").as_str()
            )
        );
        let snat = admin
            .ok(
                "listPublicIpAddresses",
                &[("vpcid", &vpc), ("issourcenat", "true")],
            )
            .await;
        assert_eq!(
            snat["publicipaddress"][0]["ipaddress"],
            public_ip.as_str(),
            "the gateway uses the VPC's source NAT address"
        );

        // A peer subnet inside the VPC is refused when the connection is made.
        let (inside, _) = create(
            &admin,
            "createVpnCustomerGateway",
            &customer(&[("name", "inside"), ("cidrlist", "10.1.5.0/24")]),
        )
        .await;
        let (code, text) = refused(
            &admin,
            "createVpnConnection",
            &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &inside)],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            format!(
                "The subnets of customer gateway {inside}'s subnet 10.1.5.0/24 is overlapped with VPC cidr 10.1.0.0/16!"
            )
        );

        // A good connection: the router gets the VPN with the generation.
        let (office, _) = create(
            &admin,
            "createVpnCustomerGateway",
            &customer(&[
                ("name", "office"),
                ("esppolicy", "aes256-sha256;modp2048"),
                ("dpd", "true"),
            ]),
        )
        .await;
        m.agent.clear();
        let (conn, job) = create(
            &admin,
            "createVpnConnection",
            &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &office)],
        )
        .await;
        assert_eq!(job["jobstatus"], 1, "{job}");
        let view = &job["jobresult"]["vpnconnection"];
        assert_eq!(view["id"], conn.as_str());
        assert_eq!(view["state"], "Connected");
        assert_eq!(view["publicip"], public_ip.as_str());
        assert_eq!(view["s2scustomergatewayid"], office.as_str());
        assert_eq!(view["s2svpngatewayid"], gw.as_str());
        assert_eq!(view["passive"], false);
        let sent = set_vpns(m);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].generation > 0);
        let vpn = sent[0].vpn.as_ref().unwrap();
        assert_eq!(vpn.public_ip, public_ip);
        let c = &vpn.connections[0];
        assert_eq!(c.id, conn);
        assert_eq!(c.peer_address, "198.51.100.20");
        assert_eq!(c.local_cidrs, ["10.1.0.0/16"]);
        assert_eq!(c.remote_cidrs, ["10.9.0.0/16"]);
        assert_eq!(c.psk, "open sesame");
        assert_eq!(c.ike_proposals, ["aes128-sha1-modp1536"]);
        assert_eq!(c.esp_proposals, ["aes256-sha256-modp2048"]);
        assert_eq!(
            (c.ike_lifetime_seconds, c.esp_lifetime_seconds),
            (86400, 3600)
        );
        assert!(c.dpd && !c.passive);

        // CloudStack's checks of a second connection.
        let (code, text) = refused(
            &admin,
            "createVpnConnection",
            &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &office)],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            format!(
                "The vpn connection with customer gateway id {office} and vpn gateway id {gw} already existed!"
            )
        );
        let (near, _) = create(
            &admin,
            "createVpnCustomerGateway",
            &customer(&[
                ("name", "near"),
                ("gateway", "198.51.100.30"),
                ("cidrlist", "10.9.8.0/24"),
            ]),
        )
        .await;
        let (code, text) = refused(
            &admin,
            "createVpnConnection",
            &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &near)],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            "The new connection's remote subnet 10.9.8.0/24 is overlapped with existed VPN connection to customer gateway office's subnet 10.9.0.0/16"
        );

        // A passive connection waits: Disconnected.
        let (lab, _) = create(
            &admin,
            "createVpnCustomerGateway",
            &customer(&[
                ("name", "lab"),
                ("gateway", "198.51.100.40"),
                ("cidrlist", "10.20.0.0/16"),
            ]),
        )
        .await;
        let (passive, job) = create(
            &admin,
            "createVpnConnection",
            &[
                ("s2svpngatewayid", &gw),
                ("s2scustomergatewayid", &lab),
                ("passive", "true"),
            ],
        )
        .await;
        assert_eq!(job["jobresult"]["vpnconnection"]["state"], "Disconnected");
        assert_eq!(job["jobresult"]["vpnconnection"]["passive"], true);

        // What uses a gateway cannot go.
        let (code, text) = refused(&admin, "deleteVpnGateway", &[("id", &gw)]).await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            format!(
                "Unable to delete VPN gateway {gw} because there is still related VPN connections!"
            )
        );
        let (code, text) = refused(&admin, "deleteVpnCustomerGateway", &[("id", &office)]).await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            format!(
                "Unable to delete VPN customer gateway with id {office} because there is still related VPN connections!"
            )
        );

        // Reset: the router is sent the connection with a new reset serial.
        m.agent.clear();
        let done = run_job(&admin, "resetVpnConnection", &[("id", &conn)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        assert_eq!(done["jobresult"]["vpnconnection"]["state"], "Connected");
        let sent = set_vpns(m);
        let serial = |r: &pb::SetVpnRequest, id: &str| {
            r.vpn
                .as_ref()
                .unwrap()
                .connections
                .iter()
                .find(|c| c.id == id)
                .unwrap()
                .reset_serial
        };
        assert_eq!(serial(&sent[0], &conn), 1);
        assert_eq!(serial(&sent[0], &passive), 0, "only the reset connection");

        // A router that refuses: Error with its reason, the job fails.
        m.agent
            .fail("SetVpn", AgentError::Failed("charon is not running".into()));
        let done = run_job(&admin, "resetVpnConnection", &[("id", &conn)]).await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        m.agent.unfail("SetVpn");
        let listed = admin.ok("listVpnConnections", &[("id", &conn)]).await;
        let row = &listed["vpnconnection"][0];
        assert_eq!(row["state"], "Error");
        assert!(
            row["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("charon is not running"),
            "{row}"
        );
        let done = run_job(&admin, "resetVpnConnection", &[("id", &conn)]).await;
        assert_eq!(done["jobresult"]["vpnconnection"]["state"], "Connected");
        let listed = admin.ok("listVpnConnections", &[("id", &conn)]).await;
        assert!(
            listed["vpnconnection"][0].get("reason").is_none(),
            "{listed}"
        );

        // Listing by VPC; deleting a connection sends the rest.
        let listed = admin.ok("listVpnConnections", &[("vpcid", &vpc)]).await;
        assert_eq!(listed["count"], 2);
        m.agent.clear();
        let done = run_job(&admin, "deleteVpnConnection", &[("id", &conn)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let sent = set_vpns(m);
        let left: Vec<&str> = sent[0]
            .vpn
            .as_ref()
            .unwrap()
            .connections
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(left, [passive.as_str()]);
        let done = run_job(&admin, "deleteVpnConnection", &[("id", &passive)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let sent = set_vpns(m);
        assert!(
            sent.last()
                .unwrap()
                .vpn
                .as_ref()
                .unwrap()
                .connections
                .is_empty()
        );
        let listed = admin.ok("listVpnConnections", &[("vpcid", &vpc)]).await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0);
        let done = run_job(&admin, "deleteVpnGateway", &[("id", &gw)]).await;
        assert_eq!(done["jobstatus"], 1, "{done}");
        let listed = admin.ok("listVpnGateways", &[("vpcid", &vpc)]).await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0);
    }
);

on_both_backends!(accounts_see_and_use_only_their_own_vpn_objects, |m| {
    let admin = m.admin();
    let env = zone_env(&admin, "vpno").await;
    let alice = user(&admin, "alice").await;
    let bob = user(&admin, "bob").await;
    let (vpc, gw, _) = vpc_with_gateway(&alice, &env, "alice-vpc", "10.1.0.0/16").await;
    let (cg, _) = create(&alice, "createVpnCustomerGateway", &customer(&[])).await;
    let (bob_cg, _) = create(&bob, "createVpnCustomerGateway", &customer(&[])).await;

    // Bob sees none of Alice's objects and cannot act on them.
    for list in ["listVpnGateways", "listVpnConnections"] {
        let listed = bob.ok(list, &[]).await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0, "{list}: {listed}");
    }
    let listed = bob.ok("listVpnCustomerGateways", &[]).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["vpncustomergateway"][0]["id"], bob_cg.as_str());
    let (code, _) = refused(&bob, "createVpnGateway", &[("vpcid", &vpc)]).await;
    assert_eq!(code, 531);
    let (code, _) = refused(&bob, "deleteVpnCustomerGateway", &[("id", &cg)]).await;
    assert_eq!(code, 531);
    let (code, _) = refused(
        &bob,
        "createVpnConnection",
        &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &bob_cg)],
    )
    .await;
    assert_eq!(code, 531, "Alice's VPN gateway");
    let (code, text) = refused(
        &alice,
        "createVpnConnection",
        &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &bob_cg)],
    )
    .await;
    assert_eq!(code, 531, "Bob's customer gateway: {text}");

    let (conn, job) = create(
        &alice,
        "createVpnConnection",
        &[("s2svpngatewayid", &gw), ("s2scustomergatewayid", &cg)],
    )
    .await;
    assert_eq!(job["jobresult"]["vpnconnection"]["ipsecpsk"], "open sesame");
    let (code, _) = refused(&bob, "resetVpnConnection", &[("id", &conn)]).await;
    assert_eq!(code, 531);

    // The root admin sees Alice's objects, but not her key.
    let listed = admin
        .ok(
            "listVpnCustomerGateways",
            &[("listall", "true"), ("id", &cg)],
        )
        .await;
    assert_eq!(listed["count"], 1);
    assert!(
        listed["vpncustomergateway"][0].get("ipsecpsk").is_none(),
        "{listed}"
    );
    let listed = admin.ok("listVpnConnections", &[("listall", "true")]).await;
    assert_eq!(listed["count"], 1);
    assert!(listed["vpnconnection"][0].get("ipsecpsk").is_none());
    assert_eq!(listed["vpnconnection"][0]["account"], "alice");
    let listed = alice.ok("listVpnCustomerGateways", &[("id", &cg)]).await;
    assert_eq!(listed["vpncustomergateway"][0]["ipsecpsk"], "open sesame");

    // The VPC takes its VPN gateway and connections along; the account its
    // customer gateways.
    let done = run_job(&alice, "deleteVPC", &[("id", &vpc)]).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    for list in ["listVpnGateways", "listVpnConnections"] {
        let listed = admin.ok(list, &[("listall", "true")]).await;
        assert_eq!(listed["count"].as_u64().unwrap_or(0), 0, "{list}: {listed}");
    }
    let listed = alice.ok("listVpnCustomerGateways", &[]).await;
    assert_eq!(
        listed["count"], 1,
        "customer gateways belong to the account"
    );
    let bob_account = bob.ok("listAccounts", &[]).await["account"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = run_job(&admin, "deleteAccount", &[("id", &bob_account)]).await;
    assert_eq!(done["jobstatus"], 1, "{done}");
    let listed = admin
        .ok("listVpnCustomerGateways", &[("listall", "true")])
        .await;
    let ids: Vec<&str> = listed["vpncustomergateway"]
        .as_array()
        .map(|a| a.iter().filter_map(|g| g["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [cg.as_str()], "Bob's gateway went with his account");
});

//! VM services through the HTTP API, on SQLite and PostgreSQL: SSH key pairs
//! of an account (create, register, list with fingerprints, delete), a VM
//! deployed with user data and a key pair, what the router is sent for it
//! (SetVmData with the tier's list, and the same in its full state), and
//! resetSSHKeyForVirtualMachine on a stopped VM.

mod support;

use std::process::Command;

use support::api::{TestManager, job_ok, on_both_backends, refused};
use support::vpc::{create_tier, create_vpc, user, vm_params, zone_env};
use vpc_manager::orchestration::AgentCommand;
use vpc_proto::v1 as pb;

/// A key made by `ssh-keygen -t ed25519 -C test@lab`; `ssh-keygen -l -E md5`
/// prints its fingerprint as `MD5:4a:88:fd:fa:1f:f9:fc:25:df:7c:1e:7f:26:0a:91:31`.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAzLY2djU2glpO0JsxiLaUmhS+F5O+N06ylz86zTDHP test@lab";
const KEY_FINGERPRINT: &str = "4a:88:fd:fa:1f:f9:fc:25:df:7c:1e:7f:26:0a:91:31";
/// `#cloud-config\nhostname: web\n`, base64 without its padding (CloudStack
/// accepts it and stores it padded).
const USER_DATA: &str = "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogd2ViCg";

/// The tier list of the last SetVmData.
fn last_vm_data(m: &TestManager) -> pb::TierVmData {
    m.agent
        .commands()
        .into_iter()
        .rev()
        .find_map(|c| match c {
            AgentCommand::SetVmData(r) => r.vm_data,
            _ => None,
        })
        .expect("a SetVmData")
}

fn metadata(vm: &pb::VmData, name: &str) -> String {
    vm.metadata
        .iter()
        .find(|e| e.name == name)
        .map(|e| e.value.clone())
        .unwrap_or_default()
}

on_both_backends!(
    key_pairs_belong_to_an_account_with_cloudstacks_fingerprint,
    |m| {
        let admin = m.admin();
        let alice = user(&admin, "alice").await;
        let bob = user(&admin, "bob").await;

        let registered = alice
            .ok(
                "registerSSHKeyPair",
                &[("name", "laptop"), ("publickey", KEY)],
            )
            .await["keypair"]
            .clone();
        assert_eq!(registered["name"], "laptop");
        assert_eq!(registered["fingerprint"], KEY_FINGERPRINT);
        assert_eq!(registered["account"], "alice");

        // A name is unique in its account, a key too; other accounts may reuse both.
        let (code, text) = refused(
            &alice,
            "registerSSHKeyPair",
            &[("name", "laptop"), ("publickey", KEY)],
        )
        .await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            "A key pair with name 'laptop' already exists for this account."
        );
        let (code, text) = refused(
            &alice,
            "registerSSHKeyPair",
            &[("name", "again"), ("publickey", KEY)],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.starts_with("A key pair with key 'ssh-ed25519"),
            "{text}"
        );
        bob.ok(
            "registerSSHKeyPair",
            &[("name", "laptop"), ("publickey", KEY)],
        )
        .await;
        let (code, text) = refused(
            &alice,
            "registerSSHKeyPair",
            &[("name", "bad"), ("publickey", "ssh-rsa not-a-key")],
        )
        .await;
        assert_eq!((code, text.as_str()), (431, "Public key is invalid"));

        // createSSHKeyPair: RSA, the private key once, matching the public one.
        let created = alice.ok("createSSHKeyPair", &[("name", "made")]).await["keypair"].clone();
        let private = created["privatekey"].as_str().expect("a private key");
        assert!(
            private.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{private}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("made");
        std::fs::write(&path, private).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let derived = Command::new("ssh-keygen")
            .args(["-l", "-E", "md5", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let derived = String::from_utf8_lossy(&derived.stdout).to_string();
        assert!(derived.starts_with("2048 MD5:"), "{derived}");
        assert!(
            derived.contains(created["fingerprint"].as_str().unwrap()),
            "{derived} vs {created}"
        );

        // Lists: alice sees her two, by name, fingerprint or keyword; never a
        // private key; bob sees his own only.
        let listed = alice.ok("listSSHKeyPairs", &[]).await;
        assert_eq!(listed["count"], 2);
        assert!(
            listed["sshkeypair"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k.get("privatekey").is_none())
        );
        let by_fp = alice
            .ok("listSSHKeyPairs", &[("fingerprint", KEY_FINGERPRINT)])
            .await;
        assert_eq!(by_fp["sshkeypair"][0]["name"], "laptop");
        let by_keyword = alice.ok("listSSHKeyPairs", &[("keyword", "mad")]).await;
        assert_eq!(by_keyword["count"], 1);
        assert_eq!(bob.ok("listSSHKeyPairs", &[]).await["count"], 1);
        assert_eq!(
            admin.ok("listSSHKeyPairs", &[("listall", "true")]).await["count"],
            3
        );

        // Delete by name in the caller's account.
        alice.ok("deleteSSHKeyPair", &[("name", "made")]).await;
        let (code, text) = refused(&alice, "deleteSSHKeyPair", &[("name", "made")]).await;
        assert_eq!(code, 431);
        assert_eq!(
            text,
            "A key pair with name 'made' does not exist for account alice in specified domain id"
        );
        assert_eq!(alice.ok("listSSHKeyPairs", &[]).await["count"], 1);
        assert_eq!(bob.ok("listSSHKeyPairs", &[]).await["count"], 1);
    }
);

on_both_backends!(
    a_vm_deployed_with_user_data_and_a_key_pair_gets_them_on_its_router,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "sz1").await;
        let alice = user(&admin, "alice").await;
        let vpc = create_vpc(&alice, &env, "va", "10.1.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let web = create_tier(&alice, &env, &vpc_id, "web", "10.1.1.1", "255.255.255.0").await;
        let web_id = web["id"].as_str().unwrap().to_string();
        alice
            .ok(
                "registerSSHKeyPair",
                &[("name", "laptop"), ("publickey", KEY)],
            )
            .await;

        // CloudStack's refusals, before anything is created.
        let mut params = vm_params(&env, &web_id, "vm1");
        params.push(("userdata", "not base64!"));
        let (code, text) = refused(&alice, "deployVirtualMachine", &params).await;
        assert_eq!(
            (code, text.as_str()),
            (431, "User data is not base64 encoded")
        );
        let mut params = vm_params(&env, &web_id, "vm1");
        params.push(("keypair", "nosuch"));
        let (code, text) = refused(&alice, "deployVirtualMachine", &params).await;
        assert_eq!(
            (code, text.as_str()),
            (431, "Not all specified keyparis exist")
        );
        assert_eq!(
            alice.ok("listVirtualMachines", &[]).await.get("count"),
            None
        );

        let mut params = vm_params(&env, &web_id, "vm1");
        params.push(("userdata", USER_DATA));
        params.push(("keypair", "laptop"));
        m.agent.clear();
        let vm = job_ok(&alice, "deployVirtualMachine", &params).await["virtualmachine"].clone();
        let vm_id = vm["id"].as_str().unwrap().to_string();
        let data = last_vm_data(m);
        assert_eq!(data.vms.len(), 1);
        let sent = &data.vms[0];
        assert_eq!(sent.ip_address, vm["nic"][0]["ipaddress"].as_str().unwrap());
        assert_eq!(
            sent.mac_address,
            vm["nic"][0]["macaddress"].as_str().unwrap()
        );
        assert_eq!(sent.user_data, b"#cloud-config\nhostname: web\n");
        assert_eq!(sent.public_keys, vec![KEY.to_string()]);
        assert_eq!(metadata(sent, "instance-id"), vm_id);
        assert_eq!(metadata(sent, "vm-id"), vm_id);
        assert_eq!(metadata(sent, "local-hostname"), "vm1");
        assert_eq!(metadata(sent, "service-offering"), "Small Instance");
        assert_eq!(metadata(sent, "availability-zone"), "sz1");
        // The VPC's source NAT address is the VM's public address.
        let snat = alice
            .ok(
                "listPublicIpAddresses",
                &[("vpcid", &vpc_id), ("issourcenat", "true")],
            )
            .await["publicipaddress"][0]["ipaddress"]
            .clone();
        assert_eq!(metadata(sent, "public-ipv4"), snat.as_str().unwrap());

        // A second VM without either: on the same tier list, with its metadata.
        job_ok(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &web_id, "vm2"),
        )
        .await;
        let data = last_vm_data(m);
        assert_eq!(data.vms.len(), 2);
        assert!(data.vms[1].user_data.is_empty() && data.vms[1].public_keys.is_empty());

        // New user data reaches the router at once, with a new generation.
        let g = m.agent.applied_generation();
        m.agent.clear();
        let updated = alice
            .ok(
                "updateVirtualMachine",
                &[
                    ("id", &vm_id),
                    ("userdata", "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogbmV3Cg=="),
                ],
            )
            .await;
        assert_eq!(updated["virtualmachine"]["id"], vm_id.as_str());
        let rpcs: Vec<_> = m
            .agent
            .commands()
            .iter()
            .map(|c| (c.rpc(), c.generation()))
            .collect();
        assert_eq!(rpcs, vec![("SetVmData", Some(g + 1))]);
        assert_eq!(
            last_vm_data(m).vms[0].user_data,
            b"#cloud-config\nhostname: new\n"
        );
        let (code, text) = refused(
            &alice,
            "updateVirtualMachine",
            &[("id", &vm_id), ("userdata", "!!")],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (431, "User data is not base64 encoded")
        );
        assert_eq!(m.agent.commands().len(), 1, "a refusal sends nothing");
        alice
            .ok(
                "updateVirtualMachine",
                &[("id", &vm_id), ("userdata", USER_DATA)],
            )
            .await;

        // The router's full state carries the same.
        m.agent.clear();
        let routers = admin
            .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
            .await;
        let router_id = routers["router"][0]["id"].as_str().unwrap().to_string();
        job_ok(&admin, "rebootRouter", &[("id", &router_id)]).await;
        let full = m
            .agent
            .commands()
            .into_iter()
            .find_map(|c| match c {
                AgentCommand::ApplyConfig(r) => r.config,
                _ => None,
            })
            .expect("an ApplyConfig");
        assert_eq!(full.vm_data.len(), 1);
        assert_eq!(full.vm_data[0].vms.len(), 2);
        assert_eq!(
            full.vm_data[0].vms[0].user_data,
            b"#cloud-config\nhostname: web\n"
        );

        // A new key: only for a stopped VM; read when it starts again.
        let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAzLY2djU2glpO0JsxiLaUmhS+F5O+N06ylz86zTDHQ other@lab";
        alice
            .ok(
                "registerSSHKeyPair",
                &[("name", "other"), ("publickey", other)],
            )
            .await;
        let (code, text) = refused(
            &alice,
            "resetSSHKeyForVirtualMachine",
            &[("id", &vm_id), ("keypair", "other")],
        )
        .await;
        assert_eq!(code, 431);
        assert!(
            text.ends_with("should be stopped to do SSH Key reset"),
            "{text}"
        );
        job_ok(&alice, "stopVirtualMachine", &[("id", &vm_id)]).await;
        let (code, text) = refused(&alice, "resetSSHKeyForVirtualMachine", &[("id", &vm_id)]).await;
        assert_eq!(
            (code, text.as_str()),
            (431, "'keypair' or 'keyparis' must be specified")
        );
        job_ok(
            &alice,
            "resetSSHKeyForVirtualMachine",
            &[("id", &vm_id), ("keypair", "other")],
        )
        .await;
        m.agent.clear();
        job_ok(&alice, "startVirtualMachine", &[("id", &vm_id)]).await;
        let data = last_vm_data(m);
        let started = data
            .vms
            .iter()
            .find(|v| metadata(v, "vm-id") == vm_id)
            .expect("the VM on its tier list");
        assert_eq!(started.public_keys, vec![other.to_string()]);
        assert_eq!(
            started.user_data, b"#cloud-config\nhostname: web\n",
            "the user data stays"
        );
    }
);

/// The error text of a refused call.
fn error_text(body: &serde_json::Value) -> String {
    body.as_object()
        .and_then(|o| o.values().next())
        .and_then(|r| r["errortext"].as_str())
        .unwrap_or_default()
        .to_string()
}

on_both_backends!(
    registered_user_data_passwords_and_the_limits_of_get_and_post,
    |m| {
        let admin = m.admin();
        let env = zone_env(&admin, "sz2").await;
        let alice = user(&admin, "alice").await;
        let bob = user(&admin, "bob").await;
        let vpc = create_vpc(&alice, &env, "vp", "10.2.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let web = create_tier(&alice, &env, &vpc_id, "web", "10.2.1.1", "255.255.255.0").await;
        let web_id = web["id"].as_str().unwrap().to_string();

        // registerUserData: CloudStack's checks and texts.
        let registered = alice
            .ok(
                "registerUserData",
                &[
                    ("name", "boot"),
                    ("userdata", USER_DATA),
                    ("params", "role,site"),
                ],
            )
            .await["userdata"]
            .clone();
        assert_eq!(registered["name"], "boot");
        assert_eq!(registered["params"], "role,site");
        assert_eq!(registered["account"], "alice");
        assert_eq!(registered["userdata"], format!("{USER_DATA}=="));
        let boot = registered["id"].as_str().unwrap().to_string();
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("name", "boot"), ("userdata", "SGk=")],
                "A userdata with name boot already exists for this account.",
            ),
            (
                &[("name", "again"), ("userdata", USER_DATA)],
                "Userdata boot with same content already exists for this account.",
            ),
            (
                &[
                    ("name", "meta"),
                    ("userdata", "SGk="),
                    ("params", "a,public-keys,vm-id"),
                ],
                "Params passed here have a few virtual router metadata file names [public-keys, vm-id]",
            ),
            (
                &[("name", "short"), ("userdata", "")],
                "Unable to execute API command registeruserdata due to missing parameter userdata",
            ),
        ];
        for (params, expected) in cases {
            let (code, text) = refused(&alice, "registerUserData", params).await;
            assert_eq!((code, text.as_str()), (431, expected), "{params:?}");
        }
        // Bob may reuse the name; each sees his own; the admin sees both.
        bob.ok(
            "registerUserData",
            &[("name", "boot"), ("userdata", USER_DATA)],
        )
        .await;
        assert_eq!(alice.ok("listUserData", &[]).await["count"], 1);
        assert_eq!(
            alice.ok("listUserData", &[("name", "boot")]).await["userdata"][0]["id"],
            boot.as_str()
        );
        assert_eq!(
            admin.ok("listUserData", &[("listall", "true")]).await["count"],
            2
        );
        let (code, _) = refused(&bob, "deleteUserData", &[("id", &boot)]).await;
        assert_eq!(code, 431, "bob cannot delete alice's");

        // Deployed with it: the router serves its content and the params'
        // values as metadata files; both userdata and userdataid is refused.
        let mut params = vm_params(&env, &web_id, "vm1");
        params.extend([("userdataid", boot.as_str()), ("userdata", USER_DATA)]);
        let (code, text) = refused(&alice, "deployVirtualMachine", &params).await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "Both userdata and userdata ID inputs are not allowed, please provide only one"
            )
        );
        let mut params = vm_params(&env, &web_id, "vm1");
        params.extend([
            ("userdataid", boot.as_str()),
            ("userdatadetails[0].colour", "red"),
        ]);
        let (code, text) = refused(&alice, "deployVirtualMachine", &params).await;
        assert_eq!(code, 431);
        assert!(text.contains("colour is not a param"), "{text}");
        let mut params = vm_params(&env, &web_id, "vm1");
        params.extend([
            ("userdataid", boot.as_str()),
            ("userdatadetails[0].role", "web"),
            ("userdatadetails[0].site", "lab-1"),
        ]);
        m.agent.clear();
        let vm = job_ok(&alice, "deployVirtualMachine", &params).await["virtualmachine"].clone();
        assert!(
            vm.get("password").is_none(),
            "no password-enabled template: {vm}"
        );
        let sent = last_vm_data(m).vms[0].clone();
        assert_eq!(sent.user_data, b"#cloud-config\nhostname: web\n");
        assert_eq!(metadata(&sent, "role"), "web");
        assert_eq!(metadata(&sent, "site"), "lab-1");
        assert!(
            metadata(&sent, "cloud-identifier").starts_with("CloudStack-{"),
            "{sent:?}"
        );
        assert_eq!(
            metadata(&sent, "hypervisor-host-name"),
            "",
            "not exposed by default"
        );
        assert!(sent.password.is_empty());
        let (code, text) = refused(&alice, "deleteUserData", &[("id", &boot)]).await;
        assert_eq!(code, 530);
        assert_eq!(
            text,
            "Userdata boot cannot be removed as it is being used by some instances"
        );

        // A password-enabled template: the password is made at deployment,
        // shown once in the job's result, and sent to the router.
        let template = vpc_manager_template(&admin).await;
        let (code, _) = refused(
            &alice,
            "updateTemplate",
            &[("id", &template), ("passwordenabled", "true")],
        )
        .await;
        assert_eq!(code, 432, "only the root admin updates templates");
        let t = admin
            .ok(
                "updateTemplate",
                &[("id", &template), ("passwordenabled", "true")],
            )
            .await;
        assert_eq!(t["template"]["passwordenabled"], true, "{t}");
        m.agent.clear();
        let vm2 = job_ok(
            &alice,
            "deployVirtualMachine",
            &vm_params(&env, &web_id, "vm2"),
        )
        .await["virtualmachine"]
            .clone();
        let first = vm2["password"]
            .as_str()
            .expect("a password once")
            .to_string();
        assert!(first.len() >= 6, "{first}");
        assert_eq!(vm2["passwordenabled"], true);
        let vm2_id = vm2["id"].as_str().unwrap().to_string();
        let on_router = |data: pb::TierVmData| {
            data.vms
                .into_iter()
                .find(|v| metadata(v, "vm-id") == vm2_id)
                .map(|v| v.password)
                .unwrap_or_default()
        };
        assert_eq!(on_router(last_vm_data(m)), first);
        let listed = alice.ok("listVirtualMachines", &[("id", &vm2_id)]).await;
        assert!(
            listed["virtualmachine"][0].get("password").is_none(),
            "listed without its password: {listed}"
        );
        // Reset: only when Stopped; a new password, sent when it starts.
        let (code, text) =
            refused(&alice, "resetPasswordForVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(code, 431);
        assert!(
            text.ends_with("should be stopped to do password reset"),
            "{text}"
        );
        job_ok(&alice, "stopVirtualMachine", &[("id", &vm2_id)]).await;
        let reset = job_ok(&alice, "resetPasswordForVirtualMachine", &[("id", &vm2_id)]).await;
        let second = reset["virtualmachine"]["password"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(second, first);
        m.agent.clear();
        job_ok(&alice, "startVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(on_router(last_vm_data(m)), second);
        // The first VM's template was not password-enabled when it was made,
        // but it is now: its reset is allowed once it is stopped; a template
        // without passwords refuses it.
        admin
            .ok(
                "updateTemplate",
                &[("id", &template), ("passwordenabled", "false")],
            )
            .await;
        job_ok(&alice, "stopVirtualMachine", &[("id", &vm2_id)]).await;
        let (code, text) =
            refused(&alice, "resetPasswordForVirtualMachine", &[("id", &vm2_id)]).await;
        assert_eq!(
            (code, text.as_str()),
            (
                431,
                "Fail to reset password for the virtual machine, the template is not password enabled"
            )
        );

        // User data by GET is bounded at 4 KB encoded, by POST at the setting.
        let big = "QUFB".repeat(2048);
        let (code, text) = refused(
            &alice,
            "registerUserData",
            &[("name", "big"), ("userdata", big.as_str())],
        )
        .await;
        assert_eq!(
            (code, text.as_str()),
            (431, "User data is too long for an http GET request")
        );
        let (status, body) = alice
            .call_post(
                "registerUserData",
                &[("name", "big"), ("userdata", big.as_str())],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        admin
            .ok(
                "updateConfiguration",
                &[("name", "vm.userdata.max.length"), ("value", "4096")],
            )
            .await;
        let bigger = "QUJD".repeat(2048);
        let (status, body) = alice
            .call_post(
                "registerUserData",
                &[("name", "bigger"), ("userdata", bigger.as_str())],
            )
            .await;
        assert_eq!(status, 431, "{body}");
        assert_eq!(
            error_text(&body),
            "User data has exceeded configurable max length : 4096"
        );
    }
);

/// The seeded template's id.
async fn vpc_manager_template(admin: &support::api::Client) -> String {
    admin
        .ok("listTemplates", &[("templatefilter", "featured")])
        .await["template"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

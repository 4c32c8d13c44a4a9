//! Mutual TLS admits the manager's client identity only.
//!
//! The hole: any certificate the CA signed that was not limited to server use
//! got in; one with no extended key usage was served.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use vpc_integration::run_in_netns;
use vpc_proto::v1 as pb;
use vpc_proto::v1::virtual_router_client::VirtualRouterClient;

use super::agent::AgentLab;

const LISTEN: &str = "127.0.0.1:3922";

/// A certificate and key in PEM.
#[derive(Clone)]
struct Pem {
    cert: String,
    key: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Pem {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = usages;
    Pem {
        cert: p.signed_by(&key, issuer).unwrap().pem(),
        key: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// GetState over TLS from inside the router namespace, as `client` (None:
/// no client certificate).
fn get_state(r: &AgentLab, ca_pem: &str, client: Option<Pem>) -> Result<(), String> {
    let ca_pem = ca_pem.to_string();
    run_in_netns(&r.r, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Ok(runtime.block_on(async move {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name("r-1-VM");
            if let Some(c) = client {
                tls = tls.identity(Identity::from_pem(c.cert, c.key));
            }
            let channel = Channel::from_shared(format!("https://{LISTEN}"))
                .unwrap()
                .tls_config(tls)
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(5))
                .connect()
                .await
                .map_err(|e| format!("connect: {e:?}"))?;
            VirtualRouterClient::new(channel)
                .get_state(pb::GetStateRequest::default())
                .await
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        }))
    })
    .unwrap()
}

#[test]
fn only_the_managers_client_auth_certificate_gets_in_and_refusals_are_logged() {
    use ExtendedKeyUsagePurpose::*;
    let mut r = AgentLab::without_agent("sec_mtls");
    r.lab.link_up(&r.r, "lo").unwrap();
    let cluster = ca("vpc lab CA");
    let server = leaf(&cluster, "r-1-VM", vec![ServerAuth]);
    let dir = r.lab.dir().to_owned();
    let argv = vec![
        env!("CARGO_BIN_EXE_vr-agent").to_string(),
        "--listen".into(),
        format!("tcp://{LISTEN}"),
        "--tls-cert".into(),
        write(&dir, "server.pem", &server.cert),
        "--tls-key".into(),
        write(&dir, "server.key", &server.key),
        "--tls-ca".into(),
        write(&dir, "ca.pem", &cluster.pem()),
    ];
    r.spawn(&argv);

    let manager = leaf(&cluster, "vpc-manager", vec![ClientAuth]);
    let started = Instant::now();
    while let Err(e) = get_state(&r, &cluster.pem(), Some(manager.clone())) {
        assert!(r.agent().is_running(), "agent exited:\n{}", r.log());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the manager's certificate is refused: {e}\n{}",
            r.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let rogue = ca("rogue CA");
    let intruders = [
        (
            "no extended key usage",
            Some(leaf(&cluster, "vpc-manager", vec![])),
            "no extended key usage",
        ),
        (
            "server use only",
            Some(leaf(&cluster, "vpc-manager", vec![ServerAuth])),
            "for client authentication",
        ),
        (
            "another router's certificate",
            Some(leaf(&cluster, "r-2-VM", vec![ServerAuth, ClientAuth])),
            "r-2-VM",
        ),
        (
            "another CA",
            Some(leaf(&rogue, "vpc-manager", vec![ClientAuth])),
            "UnknownIssuer",
        ),
        ("no certificate", None, "refused a TLS client"),
    ];
    for (what, client, reason) in intruders {
        let got = get_state(&r, &cluster.pem(), client);
        assert!(got.is_err(), "{what}: the agent served it");
        // The client may see the refusal before the agent has logged it.
        let logged = || {
            r.log()
                .lines()
                .any(|l| l.contains("refused a TLS client") && l.contains(reason))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !logged() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            logged(),
            "{what}: no refusal with {reason:?} in the log:\n{}",
            r.log()
        );
    }
    // The manager still gets in after the refusals.
    get_state(&r, &cluster.pem(), Some(manager)).unwrap();
}

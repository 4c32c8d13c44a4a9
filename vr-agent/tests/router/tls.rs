//! The agent on TCP with mutual TLS, debugged with grpcurl through reflection.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use crate::fixture::RouterLab;

fn grpcurl() -> PathBuf {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/grpcurl");
    if bundled.exists() {
        bundled
    } else {
        PathBuf::from("grpcurl")
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A CA, with the agent's server certificate and a client certificate signed
/// by it, plus a client certificate from another CA. Returns file paths.
fn mint(dir: &Path) -> [String; 7] {
    let ca_params = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p
    };
    let ca = CertifiedIssuer::self_signed(ca_params("vpc lab CA"), KeyPair::generate().unwrap())
        .unwrap();
    let rogue =
        CertifiedIssuer::self_signed(ca_params("rogue CA"), KeyPair::generate().unwrap()).unwrap();
    let leaf = |sans: Vec<String>, usage, issuer: &CertifiedIssuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.extended_key_usages = vec![usage];
        (
            p.signed_by(&key, issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (server, server_key) = leaf(
        vec!["169.254.3.7".into(), "r-1-VM".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
    );
    let (client, client_key) = leaf(
        vec!["vpc-manager".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &ca,
    );
    let (bad, bad_key) = leaf(
        vec!["intruder".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        &rogue,
    );
    [
        write(dir, "ca.pem", &ca.pem()),
        write(dir, "server.pem", &server),
        write(dir, "server.key", &server_key),
        write(dir, "client.pem", &client),
        write(dir, "client.key", &client_key),
        write(dir, "rogue.pem", &bad),
        write(dir, "rogue.key", &bad_key),
    ]
}

#[test]
fn grpcurl_lists_and_calls_get_state_over_mtls_and_a_client_without_a_certificate_is_refused() {
    let pki = tempfile::tempdir().unwrap();
    let [ca, server, server_key, client, client_key, rogue, rogue_key] = mint(pki.path());
    let args = [
        "--listen",
        "tcp://0.0.0.0:3922",
        "--tls-cert",
        &server,
        "--tls-key",
        &server_key,
        "--tls-ca",
        &ca,
        // Reached over its control NIC before any state names that NIC (a
        // VM router at boot): the port is opened explicitly.
        "--open-agent-port-before-control",
    ];
    let r = RouterLab::start_with("tls_e2e", args.iter().map(|s| s.to_string()).collect());
    // The control NIC's link-local address, as a VM router gets it at boot.
    r.lab.addr_add(&r.r, "c0", "169.254.3.7/16").unwrap();
    r.lab.link_up(&r.r, "c0").unwrap();

    let grpcurl = grpcurl().display().to_string();
    let call = |extra: &[&str]| {
        let mut argv = vec![grpcurl.as_str(), "-max-time", "5", "-cacert", &ca];
        argv.extend_from_slice(extra);
        r.lab
            .exec_unchecked(&r.mgmt, &argv, std::time::Duration::from_secs(10))
            .unwrap()
    };
    let mut listed = call(&[
        "-cert",
        &client,
        "-key",
        &client_key,
        "169.254.3.7:3922",
        "list",
    ]);
    for _ in 0..50 {
        if listed.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        listed = call(&[
            "-cert",
            &client,
            "-key",
            &client_key,
            "169.254.3.7:3922",
            "list",
        ]);
    }
    assert!(listed.status.success(), "{listed:?}\n{}", r.agent_log());
    assert!(
        listed.stdout.contains("vpc.agent.v1.VirtualRouter"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("grpc.health.v1.Health"),
        "{}",
        listed.stdout
    );

    let state = call(&[
        "-cert",
        &client,
        "-key",
        &client_key,
        "169.254.3.7:3922",
        "vpc.agent.v1.VirtualRouter/GetState",
    ]);
    assert!(state.status.success(), "{state:?}");
    assert!(state.stdout.contains("liveRuleset"), "{}", state.stdout);

    let anonymous = call(&["169.254.3.7:3922", "list"]);
    assert!(
        !anonymous.status.success(),
        "a client without a certificate got in: {anonymous:?}"
    );
    let intruder = call(&[
        "-cert",
        &rogue,
        "-key",
        &rogue_key,
        "169.254.3.7:3922",
        "list",
    ]);
    assert!(
        !intruder.status.success(),
        "a certificate from another CA got in: {intruder:?}"
    );
}

//! SSH key pairs (CloudStack's `SSHKeyPair`), one command per file:
//! `createSSHKeyPair` (the private key returned once, never stored),
//! `registerSSHKeyPair`, `listSSHKeyPairs`, `deleteSSHKeyPair`. A key pair
//! belongs to an account, under a name unique in it; VMs deployed or reset
//! with it keep a copy of its public key (deleting the pair leaves them
//! alone, as in CloudStack).

mod create;
mod delete;
mod list;
mod register;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use crate::error::Error;
use crate::server::command::{Arg, Text};
use crate::server::registry::{FieldSpec, Registry, field};
use crate::services::owner::Owner;
use crate::store::sshkey::KeyPair;

pub use create::CreateSshKeyPair;
pub use delete::DeleteSshKeyPair;
pub use list::ListSshKeyPairs;
pub use register::RegisterSshKeyPair;

/// Registers the SSH key pair commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<CreateSshKeyPair>();
    registry.sync::<RegisterSshKeyPair>();
    registry.sync::<ListSshKeyPairs>();
    registry.sync::<DeleteSshKeyPair>();
}

/// The longest key pair name (CloudStack's `ssh_keypairs.keypair_name` is a
/// `varchar(255)`).
pub const MAX_NAME_LEN: u32 = 255;
/// The longest public key accepted (an OpenSSH RSA 16384-bit key is about
/// 2.8 KB; CloudStack's column is a `varchar(5120)`).
pub const MAX_PUBLIC_KEY_LEN: usize = 5120;

const NAME: Arg<Text> = Arg::req("name", "the name of the key pair").length(MAX_NAME_LEN);

/// The key types an OpenSSH public key line may name.
const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// An OpenSSH public key line (`<type> <base64 blob> [comment]`), checked:
/// the type is known and the blob decodes and names the same type. Returns
/// the line trimmed and the decoded blob. CloudStack refuses anything else
/// with "Public key is invalid".
pub fn parse_public_key(material: &str) -> Result<(String, Vec<u8>), Error> {
    let invalid = || Error::invalid("Public key is invalid");
    let line = material.trim();
    if line.len() > MAX_PUBLIC_KEY_LEN || line.contains(['\n', '\r']) {
        return Err(invalid());
    }
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(invalid());
    }
    let bytes = STANDARD.decode(blob).map_err(|_| invalid())?;
    // The blob starts with its own type as an SSH string (length-prefixed).
    let named = bytes
        .get(..4)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map(|l| u32::from_be_bytes(l) as usize)
        .and_then(|len| bytes.get(4..4 + len));
    if named != Some(kind.as_bytes()) {
        return Err(invalid());
    }
    Ok((line.to_owned(), bytes))
}

/// The fingerprint as CloudStack prints it: the MD5 of the key blob, as
/// colon-separated lower-case hex pairs.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = Md5::digest(blob);
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn keypair_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the key pair"),
        field("name", "string", "the name of the key pair"),
        field(
            "fingerprint",
            "string",
            "the MD5 fingerprint of the public key",
        ),
        field("account", "string", "the owner account"),
        field("domainid", "string", "the owner's domain ID"),
        field("domain", "string", "the owner's domain"),
    ]
}

/// A stored key pair as the API shows it.
fn view(k: &KeyPair, owner: &Owner) -> Value {
    json!({
        "id": k.uuid,
        "name": k.name,
        "fingerprint": k.fingerprint,
        "account": owner.account_name,
        "domainid": owner.domain_uuid,
        "domain": owner.domain_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key made by `ssh-keygen -t ed25519` for this test;
    /// `ssh-keygen -l -E md5` prints its fingerprint as
    /// `MD5:4a:88:fd:fa:1f:f9:fc:25:df:7c:1e:7f:26:0a:91:31`.
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFAzLY2djU2glpO0JsxiLaUmhS+F5O+N06ylz86zTDHP test@lab";

    #[test]
    fn an_openssh_line_is_kept_and_fingerprinted_as_md5_hex_pairs() {
        let (line, blob) = parse_public_key(&format!("  {ED25519}\n")).unwrap();
        assert_eq!(line, ED25519);
        assert_eq!(
            fingerprint(&blob),
            "4a:88:fd:fa:1f:f9:fc:25:df:7c:1e:7f:26:0a:91:31"
        );
        // MD5 of the empty blob, a known value, in CloudStack's form.
        assert_eq!(
            fingerprint(b""),
            "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e"
        );
    }

    #[test]
    fn garbage_an_unknown_type_or_a_blob_of_another_type_is_invalid() {
        for bad in [
            "",
            "not a key",
            "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIHRl",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIFAzLY2djU2glpO0JsxiLaUmhS+F5O+N06ylz86zTDHP",
            "ssh-ed25519 !!!notbase64",
            "ssh-ed25519 AAAA\nssh-ed25519 AAAA",
        ] {
            let err = parse_public_key(bad).unwrap_err();
            assert_eq!(err.to_string(), "Public key is invalid", "{bad:?}");
        }
    }
}

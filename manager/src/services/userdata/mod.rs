//! User data and SSH keys of VMs, as `deployVirtualMachine` and
//! `resetSSHKeyForVirtualMachine` take them: the checks CloudStack makes
//! (`UserVmManagerImpl.validateUserData`, the key pair lookups), in the
//! order it makes them, with its texts.

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::Error;
use crate::store::{Tx, sshkey};

/// CloudStack's `MAX_HTTP_POST_LENGTH`: 512 blocks of 2 KB, the ceiling of
/// user data sent with POST (encoded and decoded).
pub const MAX_POST_LENGTH: usize = 512 * 2048;
/// CloudStack's `vm.userdata.max.length` default: the longest encoded user
/// data accepted.
pub const MAX_ENCODED_LENGTH: usize = 32768;

/// Base64 as Apache commons-codec reads it: either alphabet, padding or not.
fn lenient(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Checks `userdata` as CloudStack does and returns it re-encoded with its
/// padding (what the router decodes).
pub fn check_user_data(userdata: &str) -> Result<String, Error> {
    let compact: String = userdata.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = lenient(&alphabet::STANDARD)
        .decode(&compact)
        .or_else(|_| lenient(&alphabet::URL_SAFE).decode(&compact))
        .map_err(|_| Error::invalid("User data is not base64 encoded"))?;
    if compact.len() >= MAX_POST_LENGTH {
        return Err(Error::invalid(
            "User data is too long for an http POST request",
        ));
    }
    if compact.len() > MAX_ENCODED_LENGTH {
        return Err(Error::invalid(format!(
            "User data has exceeded configurable max length : {MAX_ENCODED_LENGTH}"
        )));
    }
    if decoded.is_empty() {
        return Err(Error::invalid("User data is too short"));
    }
    Ok(STANDARD.encode(decoded))
}

/// The decoded user data of a stored (checked) value; empty when none.
pub fn decode_stored(user_data: &str) -> Vec<u8> {
    STANDARD.decode(user_data).unwrap_or_default()
}

/// The public keys (one a line) and names (comma-separated) of the account's
/// key pairs `names`; CloudStack refuses the set when one is missing.
pub async fn key_pairs(
    tx: &mut Tx,
    account_id: i64,
    names: &[String],
) -> Result<(String, String), Error> {
    let mut keys = Vec::with_capacity(names.len());
    for name in names {
        match sshkey::by_name(&mut *tx, account_id, name).await? {
            Some(pair) => keys.push(pair.public_key),
            None => return Err(Error::invalid("Not all specified keyparis exist")),
        }
    }
    Ok((keys.join("\n"), names.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_reencoded_with_padding_and_bad_data_gets_cloudstacks_texts() {
        // "#cloud-config\n" without its padding, and URL-safe.
        assert_eq!(
            check_user_data("I2Nsb3VkLWNvbmZpZwo").unwrap(),
            "I2Nsb3VkLWNvbmZpZwo="
        );
        assert_eq!(check_user_data("Pz8_").unwrap(), "Pz8/");
        let text = |r: Result<String, Error>| r.unwrap_err().to_string();
        assert_eq!(
            text(check_user_data("not base64!")),
            "User data is not base64 encoded"
        );
        assert_eq!(text(check_user_data("")), "User data is too short");
        let long = "QUFB".repeat(MAX_ENCODED_LENGTH / 4 + 1);
        assert_eq!(
            text(check_user_data(&long)),
            "User data has exceeded configurable max length : 32768"
        );
        let huge = "QUFB".repeat(MAX_POST_LENGTH / 4);
        assert_eq!(
            text(check_user_data(&huge)),
            "User data is too long for an http POST request"
        );
        assert_eq!(
            check_user_data(&"QUFB".repeat(MAX_ENCODED_LENGTH / 4))
                .unwrap()
                .len(),
            MAX_ENCODED_LENGTH
        );
    }
}

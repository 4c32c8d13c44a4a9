//! User data and SSH keys of VMs, as `deployVirtualMachine` and
//! `resetSSHKeyForVirtualMachine` take them: the checks CloudStack makes
//! (`UserVmManagerImpl.validateUserData`, the key pair lookups), in the
//! order it makes them, with its texts; and registered user data, one
//! command per file: `registerUserData`, `listUserData`, `deleteUserData`.

mod delete;
mod list;
mod register;

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::registry::{FieldSpec, Registry, field};
use crate::store::{Tx, sshkey, userdata::UserData};

pub use delete::DeleteUserData;
pub use list::ListUserData;
pub use register::RegisterUserData;

/// Registers the registered-user-data commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<RegisterUserData>();
    registry.sync::<ListUserData>();
    registry.sync::<DeleteUserData>();
}

/// The fields of registered user data in a response.
pub const USER_DATA_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the userdata"),
    field("name", "string", "Name of the userdata"),
    field("accountid", "string", "the owner id of the userdata"),
    field("account", "string", "the owner of the userdata"),
    field("domainid", "string", "the domain id of the userdata owner"),
    field("domain", "string", "the domain name of the userdata owner"),
    field("userdata", "string", "base64 encoded userdata content"),
    field(
        "params",
        "string",
        "the comma-separated names of the variables the userdata declares",
    ),
];

/// Registered user data as the commands show it.
pub fn view(u: &UserData) -> Value {
    let mut v = json!({
        "id": u.uuid,
        "name": u.name,
        "accountid": u.account_uuid,
        "account": u.account_name,
        "domainid": u.domain_uuid,
        "domain": u.domain_name,
        "userdata": u.user_data,
    });
    if !u.params.is_empty() {
        v["params"] = json!(u.params);
    }
    v
}

/// The files the router's metadata service serves itself: a parameter of
/// registered user data may not take one of their names (CloudStack's
/// `NetworkModel.metadataFileNames`).
pub const METADATA_FILE_NAMES: &[&str] = &[
    "user-data",
    "service-offering",
    "availability-zone",
    "local-ipv4",
    "local-hostname",
    "public-ipv4",
    "public-hostname",
    "instance-id",
    "vm-id",
    "public-keys",
    "cloud-identifier",
    "hypervisor-host-name",
];

/// The longest parameter name: the router serves each as a metadata file.
pub const MAX_PARAM_NAME_LEN: usize = 64;
/// The longest parameter value: one line of a metadata file.
pub const MAX_PARAM_VALUE_LEN: usize = 4096;
/// The most parameters one registered user data may declare.
pub const MAX_PARAMS: usize = 32;

/// The parameter names of registerUserData's `params`: CloudStack refuses
/// the router's own metadata file names; each name becomes a metadata file,
/// so it must also be one the router can serve (letters, digits, '-', '_'
/// and '.', starting with a letter or digit).
pub fn check_params(params: &str) -> Result<Vec<String>, Error> {
    let names: Vec<String> = params
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    let reserved: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| METADATA_FILE_NAMES.contains(n))
        .collect();
    if !reserved.is_empty() {
        return Err(Error::invalid(format!(
            "Params passed here have a few virtual router metadata file names [{}]",
            reserved.join(", ")
        )));
    }
    if names.len() > MAX_PARAMS {
        return Err(Error::invalid(format!(
            "At most {MAX_PARAMS} params can be declared; {} were given",
            names.len()
        )));
    }
    for n in &names {
        let servable = n.len() <= MAX_PARAM_NAME_LEN
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !servable {
            return Err(Error::invalid(format!(
                "Param {n} is not valid: 1 to {MAX_PARAM_NAME_LEN} letters, digits, '-', '_' \
                 and '.', starting with a letter or digit"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(Error::invalid(format!("Param {twice} is declared twice")));
    }
    Ok(names)
}

/// The values of a VM's `userdatadetails` for registered user data with
/// parameters `params`: every key must be one of them, every value one line;
/// returned as the JSON object the VM's row keeps.
pub fn check_details(
    params: &[String],
    details: &std::collections::BTreeMap<String, String>,
) -> Result<String, Error> {
    for (k, v) in details {
        if !params.iter().any(|p| p == k) {
            return Err(Error::invalid(format!(
                "userdatadetails: {k} is not a param of the userdata (params: {})",
                params.join(",")
            )));
        }
        if v.len() > MAX_PARAM_VALUE_LEN || v.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "userdatadetails: the value of {k} must be one line of at most \
                 {MAX_PARAM_VALUE_LEN} bytes"
            )));
        }
    }
    if details.is_empty() {
        return Ok(String::new());
    }
    Ok(serde_json::to_string(details).unwrap_or_default())
}

/// Registered user data a VM is given, with the values of its params.
pub struct Registered {
    pub id: i64,
    /// Base64, as registered.
    pub user_data: String,
    /// The JSON object the VM's row keeps (see [`check_details`]).
    pub details: String,
}

/// The registered user data `id` (`userdataid`) of the account
/// `account_id`, with the values `details` (`userdatadetails`) of its params
/// checked; None without an id.
pub async fn registered_for(
    ctx: &crate::server::Ctx,
    account_id: i64,
    id: Option<uuid::Uuid>,
    details: Option<Vec<std::collections::BTreeMap<String, String>>>,
) -> Result<Option<Registered>, Error> {
    let Some(id) = id else {
        return Ok(None);
    };
    let u = crate::store::userdata::by_uuid(&ctx.app.db, id)
        .await?
        .filter(|u| u.account_id == account_id)
        .ok_or_else(|| Error::invalid_id("userdataid", id))?;
    let params: Vec<String> = u
        .params
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let merged: std::collections::BTreeMap<String, String> =
        details.into_iter().flatten().flatten().collect();
    Ok(Some(Registered {
        id: u.id,
        details: check_details(&params, &merged)?,
        user_data: u.user_data,
    }))
}

/// The (name, value) pairs of a VM's stored details, in name order.
pub fn stored_details(stored: &str) -> Vec<(String, String)> {
    serde_json::from_str::<std::collections::BTreeMap<String, String>>(stored)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// CloudStack's `MAX_HTTP_POST_LENGTH`: 512 blocks of 2 KB, the ceiling of
/// user data sent with POST (encoded and decoded).
pub const MAX_POST_LENGTH: usize = 512 * 2048;
/// CloudStack's `MAX_HTTP_GET_LENGTH`: two blocks of 2 KB, the ceiling of
/// user data sent in a query string.
pub const MAX_GET_LENGTH: usize = 2 * 2048;
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

/// Checks `userdata` as CloudStack does (`validateUserData`), for a request
/// sent with POST (`post`) or GET and the `vm.userdata.max.length` in force,
/// and returns it re-encoded with its padding (what the router decodes).
pub fn check_user_data(userdata: &str, post: bool, max_length: usize) -> Result<String, Error> {
    let compact: String = userdata.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = lenient(&alphabet::STANDARD)
        .decode(&compact)
        .or_else(|_| lenient(&alphabet::URL_SAFE).decode(&compact))
        .map_err(|_| Error::invalid("User data is not base64 encoded"))?;
    let (ceiling, method) = if post {
        (MAX_POST_LENGTH, "POST")
    } else {
        (MAX_GET_LENGTH, "GET")
    };
    if compact.len() >= ceiling {
        return Err(Error::invalid(format!(
            "User data is too long for an http {method} request"
        )));
    }
    if compact.len() > max_length {
        return Err(Error::invalid(format!(
            "User data has exceeded configurable max length : {max_length}"
        )));
    }
    if decoded.is_empty() {
        return Err(Error::invalid("User data is too short"));
    }
    Ok(STANDARD.encode(decoded))
}

/// [`check_user_data`] for the request in `ctx`: its method, and
/// `vm.userdata.max.length` as configured.
pub async fn checked(ctx: &crate::server::Ctx, userdata: &str) -> Result<String, Error> {
    let max = crate::store::config::value_i64(&ctx.app.db, "vm.userdata.max.length")
        .await?
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(MAX_ENCODED_LENGTH);
    check_user_data(userdata, ctx.http_post, max)
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
        let post = |u: &str| check_user_data(u, true, MAX_ENCODED_LENGTH);
        // "#cloud-config\n" without its padding, and URL-safe.
        assert_eq!(post("I2Nsb3VkLWNvbmZpZwo").unwrap(), "I2Nsb3VkLWNvbmZpZwo=");
        assert_eq!(post("Pz8_").unwrap(), "Pz8/");
        let text = |r: Result<String, Error>| r.unwrap_err().to_string();
        assert_eq!(text(post("not base64!")), "User data is not base64 encoded");
        assert_eq!(text(post("")), "User data is too short");
        let long = "QUFB".repeat(MAX_ENCODED_LENGTH / 4 + 1);
        assert_eq!(
            text(post(&long)),
            "User data has exceeded configurable max length : 32768"
        );
        let huge = "QUFB".repeat(MAX_POST_LENGTH / 4);
        assert_eq!(
            text(post(&huge)),
            "User data is too long for an http POST request"
        );
        assert_eq!(
            post(&"QUFB".repeat(MAX_ENCODED_LENGTH / 4)).unwrap().len(),
            MAX_ENCODED_LENGTH
        );
    }

    #[test]
    fn a_get_request_carries_at_most_4_kb_and_the_setting_bounds_both() {
        let get = |u: &str, max: usize| check_user_data(u, false, max);
        let text = |r: Result<String, Error>| r.unwrap_err().to_string();
        let just_under = "QUFB".repeat(MAX_GET_LENGTH / 4 - 1);
        assert!(get(&just_under, MAX_ENCODED_LENGTH).is_ok());
        let at = "QUFB".repeat(MAX_GET_LENGTH / 4);
        assert_eq!(
            text(get(&at, MAX_ENCODED_LENGTH)),
            "User data is too long for an http GET request"
        );
        // The same data by POST passes, unless the setting is lower.
        assert!(check_user_data(&at, true, MAX_ENCODED_LENGTH).is_ok());
        assert_eq!(
            text(check_user_data(&at, true, 100)),
            "User data has exceeded configurable max length : 100"
        );
    }
}

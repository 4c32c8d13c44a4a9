//! VM passwords (password-enabled templates): made at deployment and by
//! `resetPasswordForVirtualMachine`, `vm.password.length` characters long,
//! kept sealed with the database key in the VM's `vm_user_data` row, served
//! by the router's password server until the VM acknowledges it, and shown
//! to the caller once, in the job's result (CloudStack's behaviour).

use serde_json::Value;

use crate::error::Error;
use crate::server::App;
use crate::store::{Db, config, vmdata};

/// CloudStack's `vm.password.length` default (and its least value).
pub const DEFAULT_LENGTH: usize = 6;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";

/// A random password of `length` characters (at least [`DEFAULT_LENGTH`]):
/// letters and digits without the look-alikes (l, 1, I, O, 0), with at least
/// one lower-case letter, one upper-case letter and one digit, so that the
/// common password rules of guest systems accept it.
pub fn generate(length: usize) -> String {
    let length = length.max(DEFAULT_LENGTH);
    let mut random = vec![0u8; length * 2];
    rand::fill(&mut random[..]);
    let all: Vec<u8> = [LOWER, UPPER, DIGITS].concat();
    let mut out: Vec<u8> = random[..length]
        .iter()
        .map(|b| all[usize::from(*b) % all.len()])
        .collect();
    // One of each class at three distinct places chosen by the rest of the
    // random bytes.
    let mut places: Vec<usize> = Vec::with_capacity(3);
    for b in &random[length..] {
        let p = usize::from(*b) % length;
        if !places.contains(&p) {
            places.push(p);
        }
        if places.len() == 3 {
            break;
        }
    }
    for p in 0..length {
        if places.len() == 3 {
            break;
        }
        if !places.contains(&p) {
            places.push(p);
        }
    }
    for (i, class) in [LOWER, UPPER, DIGITS].iter().enumerate() {
        let p = places[i];
        out[p] = class[usize::from(random[(p + i) % length]) % class.len()];
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `vm.password.length` as configured.
pub async fn configured_length(db: &Db) -> Result<usize, Error> {
    Ok(config::value_i64(db, "vm.password.length")
        .await?
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_LENGTH))
}

/// Makes a new password for the VM, stores it sealed and returns it in
/// clear (for the caller, once).
pub async fn renew(app: &App, vm_id: i64) -> Result<String, Error> {
    let clear = generate(configured_length(&app.db).await?);
    let mut row = vmdata::get(&app.db, vm_id).await?;
    row.password = app.secrets.seal(&clear);
    vmdata::set(&app.db, &row).await?;
    Ok(clear)
}

/// The VM's current password in clear, if it has one.
pub async fn current(app: &App, vm_id: i64) -> Result<Option<String>, Error> {
    let row = vmdata::get(&app.db, vm_id).await?;
    if row.password.is_empty() {
        return Ok(None);
    }
    Ok(app.secrets.open(&row.password).ok())
}

/// `result` (`{"virtualmachine": {...}}`) with the password shown.
pub fn shown(mut result: Value, password: &str) -> Value {
    if let Some(vm) = result
        .get_mut("virtualmachine")
        .and_then(Value::as_object_mut)
    {
        vm.insert("password".into(), Value::String(password.into()));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_has_the_length_asked_and_every_class() {
        for length in [0, 6, 12, 40] {
            for _ in 0..200 {
                let p = generate(length);
                assert_eq!(p.len(), length.max(DEFAULT_LENGTH), "{p}");
                assert!(p.bytes().any(|b| LOWER.contains(&b)), "{p}");
                assert!(p.bytes().any(|b| UPPER.contains(&b)), "{p}");
                assert!(p.bytes().any(|b| DIGITS.contains(&b)), "{p}");
                assert!(!p.contains(['l', '1', 'I', 'O', '0']), "{p}");
            }
        }
    }

    #[test]
    fn the_password_goes_into_the_vm_object() {
        let r = shown(serde_json::json!({"virtualmachine": {"id": "x"}}), "Ab3def");
        assert_eq!(r["virtualmachine"]["password"], "Ab3def");
    }
}

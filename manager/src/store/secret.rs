//! Secrets at rest: values such as users' API secret keys are stored sealed
//! with AES-256-GCM under the database key, the way CloudStack encrypts them
//! with its database key, so a copy of the database (a backup, a stolen
//! SQLite file, a read-only PostgreSQL role) does not sign requests.
//!
//! The key is 32 random bytes, written as base64. It comes from the
//! environment (`VPC_DATABASE_KEY`), from the file the settings name
//! (`database_key_file`), or else from `database.key` in the data directory,
//! generated once with mode 0600. Managers sharing one PostgreSQL database
//! must share the key.
//!
//! A sealed value reads `enc:v1:<base64url(nonce | ciphertext | tag)>`. Rows
//! written before sealing existed hold clear text without that prefix;
//! [`SecretBox::open`] still reads them and `user::seal_clear_secrets` seals
//! them at start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The prefix of a sealed value (format version 1).
pub const SEALED_PREFIX: &str = "enc:v1:";
/// The environment variable that holds the database key (base64).
pub const KEY_ENV: &str = "VPC_DATABASE_KEY";
/// The key file made in the data directory when no key is given.
pub const DEFAULT_KEY_FILE: &str = "database.key";
const KEY_LEN: usize = 32;
/// Binds a sealed value to what it is, so a sealed value of another kind
/// (should one be added) cannot be swapped in.
const AAD: &[u8] = b"vpc-manager secret v1";

/// Errors of the database key and of sealed values.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key text is not base64 of 32 bytes.
    #[error("the database key must be 32 bytes in base64 (openssl rand -base64 32)")]
    BadKey,
    /// Reading or writing the key file failed.
    #[error("database key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    /// A sealed value does not open with this key (another key, or damage).
    #[error("a sealed secret does not open with this database key")]
    Open,
}

/// The database key, able to seal and open secrets.
#[derive(Clone)]
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from the key's base64 text.
    pub fn from_key_text(text: &str) -> Result<SecretBox, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey)?;
        if bytes.len() != KEY_LEN {
            return Err(SecretError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox {
            key: LessSafeKey::new(key),
        })
    }

    /// A new random key as base64 text.
    pub fn generate_key_text() -> String {
        let mut bytes = [0u8; KEY_LEN];
        rand::fill(&mut bytes[..]);
        STANDARD.encode(bytes)
    }

    /// The key in `path`; when the file does not exist, a new key written
    /// there first (mode 0600, created exclusively so two managers starting
    /// together cannot both write one).
    pub fn load_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        let file_error = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return SecretBox::from_key_text(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(e)),
            Err(_) => {}
        }
        let text = SecretBox::generate_key_text();
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                writeln!(file, "{text}").map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                SecretBox::from_key_text(&text)
            }
            // Another manager won the race: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(file_error)?;
                SecretBox::from_key_text(&text)
            }
            Err(e) => Err(file_error(e)),
        }
    }

    /// `clear` sealed under the key with a fresh random nonce.
    pub fn seal(&self, clear: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let mut data = clear.as_bytes().to_vec();
        // Sealing fails only for inputs of gigabytes; a secret key is short.
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut data,
            )
            .is_err()
        {
            data.clear();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The clear text of a stored value: a sealed value opened, a clear-text
    /// value (an old row) as it is.
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SecretError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, data) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut data = data.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut data)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(clear.to_vec()).map_err(|_| SecretError::Open)
    }
}

/// The database keys this process works with: one per manager it runs (a
/// test process runs several). Code that has the database but no manager,
/// such as the router state loader that hands VMs their passwords, opens
/// sealed values with it.
static KEY_RING: std::sync::RwLock<Vec<SecretBox>> = std::sync::RwLock::new(Vec::new());

/// Adds a manager's database key to the process's key ring.
pub fn remember(key: &SecretBox) {
    KEY_RING
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(key.clone());
}

/// A sealed value opened with whichever key of the ring seals it (AES-GCM
/// authenticates, so a wrong key fails rather than garbles); None when no
/// key opens it. A clear-text value comes back as it is.
pub fn open_with_ring(stored: &str) -> Option<String> {
    let ring = KEY_RING.read().unwrap_or_else(|e| e.into_inner());
    ring.iter().find_map(|key| key.open(stored).ok())
}

/// `clear` sealed with the first key of the process's key ring, for a column
/// read back as [`Sealed`]; as it is when the ring is empty (a process with
/// no manager, such as a unit test).
pub fn seal_with_ring(clear: &str) -> String {
    let ring = KEY_RING.read().unwrap_or_else(|e| e.into_inner());
    match ring.first() {
        Some(key) => key.seal(clear),
        None => clear.to_string(),
    }
}

/// A text column sealed with the database key (`#[sqlx(try_from =
/// "Sealed")]` on a `String` field): the row reads the clear text, opened
/// with the process's key ring. A value no key opens fails the read rather
/// than passing the sealed text on as if it were the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

impl<DB: sqlx::Database> sqlx::Type<DB> for Sealed
where
    String: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Sealed
where
    String: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Sealed(<String as sqlx::Decode<'r, DB>>::decode(value)?))
    }
}

impl TryFrom<Sealed> for String {
    type Error = SecretError;

    fn try_from(stored: Sealed) -> Result<String, SecretError> {
        if !is_sealed(&stored.0) {
            return Ok(stored.0);
        }
        open_with_ring(&stored.0).ok_or(SecretError::Open)
    }
}

/// Whether a stored value is sealed (not an old clear-text row).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_box() -> SecretBox {
        SecretBox::from_key_text(&SecretBox::generate_key_text()).unwrap()
    }

    #[test]
    fn sealed_values_open_to_the_clear_text_and_hide_it() {
        let b = a_box();
        let sealed = b.seal("s3cret-key");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("s3cret"));
        assert_ne!(sealed, b.seal("s3cret-key"), "a fresh nonce every time");
        assert_eq!(b.open(&sealed).unwrap(), "s3cret-key");
    }

    #[test]
    fn clear_text_rows_read_as_they_are_and_other_keys_do_not_open() {
        let b = a_box();
        assert_eq!(b.open("old-clear-secret").unwrap(), "old-clear-secret");
        let sealed = b.seal("x");
        assert!(matches!(a_box().open(&sealed), Err(SecretError::Open)));
        let mut damaged = sealed.clone();
        damaged.push('A');
        assert!(b.open(&damaged).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretBox::from_key_text("short").is_err());
        assert!(SecretBox::from_key_text(&STANDARD.encode([0u8; 16])).is_err());
        assert!(SecretBox::from_key_text(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_KEY_FILE);
        let first = SecretBox::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open(&first.seal("k")).unwrap(), "k");
    }
}

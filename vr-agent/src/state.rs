//! The persisted desired state: one protobuf file in the state directory,
//! replaced atomically (write a temp file, fsync it, rename, fsync the
//! directory), so a crash leaves either the old or the new state, never half.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prost::Message;
use vpc_proto::v1 as pb;

/// File name of the desired state inside the state directory.
pub const STATE_FILE: &str = "desired-state.pb";
/// Present while the agent waits for a resync after an unusable state file:
/// it holds why, so that a restart meanwhile is not taken for a first start
/// (which would replace the live table with an empty one).
pub const AWAITING_RESYNC_FILE: &str = "awaiting-resync";

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid state file: {source}")]
    Decode {
        path: PathBuf,
        source: prost::DecodeError,
    },
}

/// The desired state with the generation it belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub generation: u64,
    pub config: pb::RouterConfig,
}

/// Reads and writes the state file of one agent.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

impl StateStore {
    /// A store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The persisted state, or `None` on a first start.
    pub fn load(&self) -> Result<Option<Desired>, StateError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        // The file holds an ApplyConfigRequest: exactly "this config at this
        // generation", in the protocol's own encoding.
        let request = pb::ApplyConfigRequest::decode(bytes.as_slice()).map_err(|source| {
            StateError::Decode {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Some(Desired {
            generation: request.generation,
            config: request.config.unwrap_or_default(),
        }))
    }

    /// Moves an unusable state file out of the way, to
    /// `desired-state.pb.corrupt-<unix seconds>`, so that it can be examined
    /// and is never loaded again, and records `why` until the next
    /// [`StateStore::save`]; returns where the file went.
    pub fn set_aside(&self, why: impl FnOnce(&Path) -> String) -> Result<String, StateError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{stamp}"));
        let path = self.path();
        let condition = why(&aside);
        let marker = self.dir.join(AWAITING_RESYNC_FILE);
        std::fs::write(&marker, &condition).map_err(io("writing", &marker))?;
        std::fs::rename(&path, &aside).map_err(io("moving aside", &path))?;
        Ok(condition)
    }

    /// Why the agent still waits for a resync (see [`StateStore::set_aside`]),
    /// or `None`.
    pub fn awaiting_resync(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(AWAITING_RESYNC_FILE)).ok()
    }

    /// Persists `desired` atomically.
    pub fn save(&self, desired: &Desired) -> Result<(), StateError> {
        let bytes = pb::ApplyConfigRequest {
            generation: desired.generation,
            config: Some(desired.config.clone()),
        }
        .encode_to_vec();
        let path = self.path();
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        // Owner only: the state holds the VPN connections' pre-shared keys.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("creating", &tmp))?;
        file.write_all(&bytes).map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("renaming", &tmp))?;
        // A state is persisted again: no longer waiting for a resync.
        let marker = self.dir.join(AWAITING_RESYNC_FILE);
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &marker)(e)),
        }
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back_and_a_missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), None);
        let desired = Desired {
            generation: 42,
            config: crate::testing::sample_config(),
        };
        store.save(&desired).unwrap();
        assert_eq!(store.load().unwrap(), Some(desired.clone()));
        let mut newer = desired;
        newer.generation = 43;
        store.save(&newer).unwrap();
        assert_eq!(store.load().unwrap().unwrap().generation, 43);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the agent reads the keys");
    }

    #[test]
    fn an_unusable_file_is_set_aside_and_the_next_start_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(store.path(), b"\xff\xff\xff").unwrap();
        let mut aside = PathBuf::new();
        let condition = store
            .set_aside(|path| {
                aside = path.to_path_buf();
                format!("kept as {}", path.display())
            })
            .unwrap();
        assert_eq!(std::fs::read(&aside).unwrap(), b"\xff\xff\xff");
        assert!(
            aside
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("desired-state.pb.corrupt-")
        );
        assert_eq!(store.load().unwrap(), None);
        // A restart before the resync still knows it waits for one.
        assert_eq!(store.awaiting_resync(), Some(condition));
        store.save(&Desired::default()).unwrap();
        assert_eq!(store.awaiting_resync(), None);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_router() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(store.path(), b"\xff\xff\xff").unwrap();
        assert!(matches!(store.load(), Err(StateError::Decode { .. })));
    }
}

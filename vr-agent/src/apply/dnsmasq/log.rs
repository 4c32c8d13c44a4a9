//! Who dnsmasq runs as, and the rotation of its log.
//!
//! dnsmasq is started as root (it binds port 67 and 53) and told explicitly
//! which unprivileged user and group to become (`--user`, `--group`): left to
//! itself it picks a compiled-in user and keeps group root when its default
//! group (`dip`) is missing.
//!
//! It logs to `ethN.log` (`log-facility=`), which it opens once as root and
//! hands to its user. When the file passes the bound, the supervisor moves it
//! to `ethN.log.1`, creates a fresh `ethN.log` owned by that user (dnsmasq,
//! no longer root, cannot create files in the agent's directory) and sends
//! SIGUSR2, on which dnsmasq reopens its log file. Both files stay near the
//! bound: what passes it is only what dnsmasq writes between two checks.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, fchown};
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Supervisor;
use crate::accounts;
use crate::model::dev_name;
use crate::plan::dnsmasq::tier_path;

/// How dnsmasq runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsmasqOptions {
    /// The unprivileged user it becomes (`--dnsmasq-user`).
    pub user: String,
    /// The unprivileged group it becomes (`--dnsmasq-group`).
    pub group: String,
    /// The size past which its log is rotated (`--dnsmasq-log-bytes`).
    pub log_max_bytes: u64,
}

impl Default for DnsmasqOptions {
    /// `nobody` and `nogroup` (Debian's unprivileged pair, which the netns
    /// driver's searchable directories are made for), 1 MiB of log.
    fn default() -> Self {
        Self {
            user: "nobody".into(),
            group: "nogroup".into(),
            log_max_bytes: 1 << 20,
        }
    }
}

impl DnsmasqOptions {
    /// Refuses a user or group that does not exist or is root's.
    pub fn check(&self) -> Result<(), String> {
        let (uid, _) = accounts::user_ids(&self.user)
            .map_err(|e| format!("dnsmasq user {}: {e}", self.user))?;
        let gid = accounts::group_id(&self.group)
            .map_err(|e| format!("dnsmasq group {}: {e}", self.group))?;
        if uid == 0 || gid == 0 {
            return Err(format!(
                "dnsmasq must run unprivileged, not as {}:{}",
                self.user, self.group
            ));
        }
        if self.log_max_bytes == 0 {
            return Err("the dnsmasq log bound must be above 0 bytes".into());
        }
        Ok(())
    }
}

impl Supervisor {
    /// Rotates the log of every running instance that passed the bound;
    /// returns what it did.
    pub(super) fn rotate_logs(&mut self) -> Vec<String> {
        let mut report = Vec::new();
        let owner = accounts::user_ids(&self.options.user)
            .and_then(|(uid, _)| accounts::group_id(&self.options.group).map(|gid| (uid, gid)));
        let (uid, gid) = match owner {
            Ok(ids) => ids,
            Err(e) => {
                report.push(format!(
                    "cannot rotate dnsmasq logs: user {} or group {}: {e}",
                    self.options.user, self.options.group
                ));
                return report;
            }
        };
        for (index, instance) in &mut self.instances {
            if !instance.alive() {
                continue;
            }
            let dev = dev_name(*index);
            match rotate(&self.dir, *index, self.options.log_max_bytes, uid, gid) {
                Ok(None) => {}
                Ok(Some(bytes)) => {
                    let pid = Pid::from_raw(instance.pid as i32);
                    match kill(pid, Signal::SIGUSR2) {
                        Ok(()) => {
                            report.push(format!("{dev}: rotated the dnsmasq log at {bytes} bytes"))
                        }
                        Err(e) => report.push(format!(
                            "{dev}: rotated the dnsmasq log but SIGUSR2 to pid {} failed: {e}",
                            instance.pid
                        )),
                    }
                }
                Err(e) => report.push(format!("{dev}: rotating the dnsmasq log failed: {e}")),
            }
        }
        report
    }
}

/// Moves `ethN.log` to `ethN.log.1` when it holds more than `max` bytes and
/// puts an empty log owned by `uid:gid` in its place; the size it had.
fn rotate(dir: &Path, index: u32, max: u64, uid: u32, gid: u32) -> io::Result<Option<u64>> {
    let log = tier_path(dir, index, "log");
    let bytes = match fs::metadata(&log) {
        Ok(meta) if meta.len() > max => meta.len(),
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    fs::rename(&log, tier_path(dir, index, "log.1"))?;
    let fresh = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(&log)?;
    fchown(&fresh, Some(uid), Some(gid))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn a_log_past_the_bound_moves_aside_and_a_fresh_one_belongs_to_dnsmasq() {
        let dir = tempfile::tempdir().unwrap();
        let log = tier_path(dir.path(), 2, "log");
        fs::write(&log, vec![b'x'; 100]).unwrap();
        assert_eq!(rotate(dir.path(), 2, 100, 65534, 65534).unwrap(), None);
        fs::write(&log, vec![b'x'; 101]).unwrap();
        assert_eq!(rotate(dir.path(), 2, 100, 65534, 65534).unwrap(), Some(101));
        let fresh = fs::metadata(&log).unwrap();
        assert_eq!((fresh.len(), fresh.uid(), fresh.gid()), (0, 65534, 65534));
        assert_eq!(
            fs::metadata(tier_path(dir.path(), 2, "log.1"))
                .unwrap()
                .len(),
            101
        );
        assert_eq!(
            rotate(dir.path(), 3, 100, 0, 0).unwrap(),
            None,
            "no log yet"
        );
    }

    #[test]
    fn dnsmasq_must_run_as_an_existing_unprivileged_user() {
        DnsmasqOptions::default().check().unwrap();
        let as_root = DnsmasqOptions {
            user: "root".into(),
            ..DnsmasqOptions::default()
        };
        assert!(as_root.check().unwrap_err().contains("unprivileged"));
        let unknown = DnsmasqOptions {
            group: "no-such-group-here".into(),
            ..DnsmasqOptions::default()
        };
        assert!(unknown.check().unwrap_err().contains("no-such-group-here"));
    }
}

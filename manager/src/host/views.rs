//! What the host agent was asked to run, kept on disk: one file per router
//! and per VM (the request's message, protobuf-encoded) below
//! `<data_dir>/host/`. A starting host agent reads them to find the routers
//! and VMs it owns, and takes those whose processes still run under
//! supervision again; a stopped or destroyed one loses its file.

use std::path::{Path, PathBuf};

use prost::Message;
use vpc_proto::host::v1 as pb;

/// The host agent's files.
#[derive(Debug, Clone)]
pub struct Views {
    dir: PathBuf,
}

impl Views {
    /// Views kept in `<data_dir>/host`.
    pub fn new(data_dir: &Path) -> Views {
        Views {
            dir: data_dir.join("host"),
        }
    }

    fn file(&self, kind: &str, name: &str) -> PathBuf {
        self.dir.join(kind).join(format!("{name}.pb"))
    }

    /// Records a router as started (its name is checked by the caller).
    pub fn save_router(&self, router: &pb::Router) -> std::io::Result<()> {
        write_atomic(&self.file("routers", &router.name), &router.encode_to_vec())
    }

    /// Records a VM as started (its name is checked by the caller).
    pub fn save_vm(&self, vm: &pb::Vm) -> std::io::Result<()> {
        write_atomic(&self.file("vms", &vm.instance_name), &vm.encode_to_vec())
    }

    /// The router last saved under `name`.
    pub fn router(&self, name: &str) -> Option<pb::Router> {
        let bytes = std::fs::read(self.file("routers", name)).ok()?;
        pb::Router::decode(bytes.as_slice()).ok()
    }

    /// Forgets a router: its record and its standby mark.
    pub fn remove_router(&self, name: &str) -> std::io::Result<()> {
        remove(&self.file("routers", name))?;
        remove(&self.standby_file(name))
    }

    fn standby_file(&self, router: &str) -> PathBuf {
        self.dir.join("standby").join(router)
    }

    /// Marks a router as started in standby (its ports off their
    /// segments), or clears the mark (ActivateRouter, a plain start): a
    /// starting host agent takes a marked router back in standby, so a
    /// restart never puts a second router on the segments of one that
    /// still serves on another host.
    pub fn set_standby(&self, router: &str, standby: bool) -> std::io::Result<()> {
        if standby {
            write_atomic(&self.standby_file(router), b"")
        } else {
            remove(&self.standby_file(router))
        }
    }

    /// Whether the router is marked as in standby.
    pub fn is_standby(&self, router: &str) -> bool {
        self.standby_file(router).exists()
    }

    pub fn remove_vm(&self, name: &str) -> std::io::Result<()> {
        remove(&self.file("vms", name))
    }

    /// Every router saved, by name order; unreadable files are skipped
    /// with a warning.
    pub fn routers(&self) -> Vec<pb::Router> {
        self.all("routers", |b| pb::Router::decode(b).ok())
    }

    /// Every VM saved, by name order.
    pub fn vms(&self) -> Vec<pb::Vm> {
        self.all("vms", |b| pb::Vm::decode(b).ok())
    }

    fn all<T>(&self, kind: &str, decode: impl Fn(&[u8]) -> Option<T>) -> Vec<T> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(kind)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pb"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|p| {
                let found = std::fs::read(&p).ok().and_then(|b| decode(&b));
                if found.is_none() {
                    tracing::warn!(file = %p.display(), "host agent: unreadable record skipped");
                }
                found
            })
            .collect()
    }
}

/// Write to a temporary file, flush, rename: a crash leaves the old record
/// or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("pb.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_routers_and_vms_are_listed_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let views = Views::new(dir.path());
        for name in ["r-2-VM", "r-1-VM"] {
            views
                .save_router(&pb::Router {
                    name: name.into(),
                    generation: 4,
                    ..Default::default()
                })
                .unwrap();
        }
        views
            .save_vm(&pb::Vm {
                instance_name: "i-2-3-VM".into(),
                ..Default::default()
            })
            .unwrap();
        let names: Vec<String> = views.routers().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["r-1-VM", "r-2-VM"]);
        assert_eq!(views.router("r-1-VM").unwrap().generation, 4);
        views.set_standby("r-1-VM", true).unwrap();
        views.set_standby("r-2-VM", true).unwrap();
        views.set_standby("r-2-VM", false).unwrap();
        views.set_standby("r-2-VM", false).unwrap();
        assert!(views.is_standby("r-1-VM"));
        assert!(!views.is_standby("r-2-VM"));
        views.remove_router("r-1-VM").unwrap();
        assert!(!views.is_standby("r-1-VM"), "forgotten with its record");
        views.remove_router("r-1-VM").unwrap();
        assert_eq!(views.routers().len(), 1);
        assert_eq!(views.vms()[0].instance_name, "i-2-3-VM");
        views.remove_vm("i-2-3-VM").unwrap();
        assert!(views.vms().is_empty());
    }
}

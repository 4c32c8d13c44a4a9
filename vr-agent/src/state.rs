//! The persisted desired state: a snapshot, one protobuf file in the state
//! directory replaced atomically (write a temp file, fsync it, rename, fsync
//! the directory), so a crash leaves either the old or the new state, never
//! half; and a journal of the list changes since that snapshot.
//!
//! A change to one list (a NIC's ACL, the port forwards, the static NATs)
//! appends what changed in it (items removed by key, items added or
//! replaced) to `desired-state.journal` and syncs that one file, so a
//! one-item change writes a few hundred bytes whatever the router holds.
//! A NAT list change is journaled as a splice (where, how many rules went,
//! the rules that came), found when the change was checked. Every other
//! change, a journal grown past the snapshot's size, and an ACL change that
//! is not "the old order, with replacements in place and additions at the
//! end" write a new snapshot, which starts a new journal.
//!
//! Each journal record is framed (length, FNV-1a checksum): a record torn by
//! a crash fails its check, and it and what follows are dropped (that change
//! was never acknowledged: the agent answers after the sync). The journal's
//! first record names the snapshot it follows (the checksum of its bytes),
//! so a journal left behind by a crash between a new snapshot and the
//! journal's removal is recognised as stale and ignored.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prost::Message;
use vpc_proto::v1 as pb;

use crate::model::Splice;

mod writer;

/// File name of the desired state inside the state directory.
pub const STATE_FILE: &str = "desired-state.pb";
/// The list changes since the snapshot.
pub const JOURNAL_FILE: &str = "desired-state.journal";
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
    #[error("{path} does not apply to the state it follows: {message}")]
    Journal { path: PathBuf, message: String },
    /// A queued journal append failed: that journal is abandoned and the
    /// next save writes a snapshot.
    #[error("{message} (the next change writes a snapshot)")]
    JournalWrite { message: String },
}

/// The desired state with the generation it belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub generation: u64,
    pub config: pb::RouterConfig,
}

/// Which list a change replaced, so that only what changed in it is
/// journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChange {
    /// The ACL of the NIC with this device index.
    Acl(u32),
    PortForwards,
    StaticNats,
    /// Anything else: a new snapshot.
    Other,
}

const KIND_ACL: u32 = 1;
/// Port forwards removed by key and added or replaced (earlier agents').
const KIND_PORT_FORWARDS: u32 = 2;
/// Static NATs removed by key and added or replaced (earlier agents').
const KIND_STATIC_NATS: u32 = 3;
/// Port forwards spliced: `at` holds where and how many went, the rules
/// that came in their place are `port_forwards`.
const KIND_PORT_FORWARD_SPLICE: u32 = 4;
/// Static NATs spliced, as [`KIND_PORT_FORWARD_SPLICE`].
const KIND_STATIC_NAT_SPLICE: u32 = 5;

/// The first record of a journal: the snapshot it follows.
#[derive(Clone, PartialEq, prost::Message)]
struct JournalHeader {
    #[prost(uint64, tag = "1")]
    snapshot: u64,
}

/// One list change.
#[derive(Clone, PartialEq, prost::Message)]
struct JournalRecord {
    #[prost(uint64, tag = "1")]
    generation: u64,
    #[prost(uint32, tag = "2")]
    kind: u32,
    /// The keys (item numbers, rule ids) of the items removed.
    #[prost(string, repeated, tag = "3")]
    removed: Vec<String>,
    /// ACL: the list with its labels, holding the items added or replaced.
    #[prost(message, optional, tag = "4")]
    acl: Option<pb::NetworkAcl>,
    #[prost(message, repeated, tag = "5")]
    port_forwards: Vec<pb::PortForwardingRule>,
    #[prost(message, repeated, tag = "6")]
    static_nats: Vec<pb::StaticNatRule>,
    /// ACL: each item of `acl`'s index in the new list, where an item with
    /// a new number is put. A record without them (an earlier agent's)
    /// appends such items. A splice: its index and the number of items
    /// it removed.
    #[prost(uint32, repeated, tag = "7")]
    at: Vec<u32>,
}

/// FNV-1a, 64 bits: the frames' checksum and the snapshot's identity.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A frame: length (u32 LE), checksum (u64 LE), payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&fnv(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The whole frames at the start of `bytes` and the length they take; a
/// torn or corrupt frame ends the list.
fn frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 12) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        let Some(payload) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        if fnv(payload) != sum {
            break;
        }
        out.push(payload);
        at += 12 + len;
    }
    (out, at)
}

/// Keys removed, items added or replaced, and their indexes.
type Placed<T> = (Vec<String>, Vec<T>, Vec<u32>);

/// What changed from `old` to `new`, for lists whose keys are unique (ACL
/// items: validation refuses a number used twice): the keys removed, the
/// items added or replaced, and each one's index in `new`, so that the
/// replay puts an item with a new key where it stands (a renumbered item
/// keeps its place: see [`list_patch_at`]); `None` when the items that stay
/// do not keep their order. Only the part between the items both lists
/// begin and end with is diffed, so a one-item change to a long list
/// compares items instead of making every key.
fn list_diff_placed<T: Clone + PartialEq>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
) -> Option<Placed<T>> {
    use std::collections::HashMap;
    let head = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let (old, new) = (&old[head..], &new[head..]);
    let tail = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old, new) = (&old[..old.len() - tail], &new[..new.len() - tail]);
    let new_keys: HashMap<String, usize> =
        new.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    let old_by: HashMap<String, &T> = old.iter().map(|t| (key(t), t)).collect();
    if new_keys.len() != new.len() || old_by.len() != old.len() {
        return None;
    }
    let mut removed = Vec::new();
    let mut last = None;
    for t in old {
        let k = key(t);
        match new_keys.get(&k) {
            None => removed.push(k),
            Some(&i) => {
                if last.is_some_and(|l| i < l) {
                    return None;
                }
                last = Some(i);
            }
        }
    }
    let (mut changed, mut at) = (Vec::new(), Vec::new());
    for (i, t) in new.iter().enumerate() {
        if old_by.get(&key(t)) != Some(&t) {
            changed.push(t.clone());
            at.push(u32::try_from(head + i).ok()?);
        }
    }
    Some((removed, changed, at))
}

/// Replays a [`list_diff_placed`] onto `list`: items removed, items with a
/// key already there replaced in place, the others put at their index.
fn list_patch_at<T>(
    list: &mut Vec<T>,
    removed: &[String],
    changed: Vec<T>,
    at: &[u32],
    key: impl Fn(&T) -> String,
) -> Result<(), String> {
    use std::collections::{HashMap, HashSet};
    let removed: HashSet<&String> = removed.iter().collect();
    list.retain(|t| !removed.contains(&key(t)));
    let index: HashMap<String, usize> = list.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    let mut inserts = Vec::new();
    for (item, &i) in changed.into_iter().zip(at) {
        match index.get(&key(&item)) {
            Some(&j) => list[j] = item,
            None => inserts.push((i as usize, item)),
        }
    }
    inserts.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(list.len() + inserts.len());
    let mut kept = std::mem::take(list).into_iter();
    for (i, item) in inserts {
        while out.len() < i {
            out.push(
                kept.next()
                    .ok_or("an item placed past the end of its list")?,
            );
        }
        out.push(item);
    }
    out.extend(kept);
    *list = out;
    Ok(())
}

/// What changed from `old` to `new`, keyed by `key`: the keys removed and
/// the items added or replaced, when `new` is `old` without the removed
/// items, replaced items in place and added items at the end (the order
/// replaying gives back); `None` otherwise, or when keys repeat. Earlier
/// agents journaled port forwards and static NATs so (their records still
/// replay: [`list_patch`]); they are now spliced ([`splice_patch`]).
#[cfg(test)]
fn list_diff<T: Clone + PartialEq>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
) -> Option<(Vec<String>, Vec<T>)> {
    use std::collections::HashMap;
    let old_by: HashMap<String, &T> = old.iter().map(|t| (key(t), t)).collect();
    let new_by: HashMap<String, &T> = new.iter().map(|t| (key(t), t)).collect();
    if old_by.len() != old.len() || new_by.len() != new.len() {
        return None;
    }
    let removed: Vec<String> = old
        .iter()
        .map(&key)
        .filter(|k| !new_by.contains_key(k))
        .collect();
    let kept = old.len() - removed.len();
    let mut kept_keys = old.iter().map(&key).filter(|k| new_by.contains_key(k));
    for (i, item) in new.iter().enumerate() {
        let k = key(item);
        if i < kept {
            if kept_keys.next().as_ref() != Some(&k) {
                return None;
            }
        } else if old_by.contains_key(&k) {
            return None;
        }
    }
    let changed = new
        .iter()
        .filter(|t| old_by.get(&key(t)) != Some(t))
        .cloned()
        .collect();
    Some((removed, changed))
}

/// Replays a [`list_diff`] onto `list`.
fn list_patch<T>(
    list: &mut Vec<T>,
    removed: &[String],
    changed: Vec<T>,
    key: impl Fn(&T) -> String,
) {
    use std::collections::{HashMap, HashSet};
    let removed: HashSet<&String> = removed.iter().collect();
    list.retain(|t| !removed.contains(&key(t)));
    let at: HashMap<String, usize> = list.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    for item in changed {
        match at.get(&key(&item)) {
            Some(&i) => list[i] = item,
            None => list.push(item),
        }
    }
}

fn acl_key(item: &pb::AclItem) -> String {
    item.number.to_string()
}

/// Replays a splice record onto `list`: the `at[1]` items from index
/// `at[0]` replaced by `inserted`.
fn splice_patch<T>(list: &mut Vec<T>, at: &[u32], inserted: Vec<T>) -> Result<(), String> {
    let &[from, removed] = at else {
        return Err(format!("a splice record holds {} numbers, not 2", at.len()));
    };
    let (from, removed) = (from as usize, removed as usize);
    if from + removed > list.len() {
        return Err(format!(
            "a splice of {removed} items from {from} in a list of {}",
            list.len()
        ));
    }
    list.splice(from..from + removed, inserted);
    Ok(())
}

/// A splice's record fields: where and how many went, and what came.
fn splice_at(splice: Splice) -> Option<Vec<u32>> {
    Some(vec![
        u32::try_from(splice.at).ok()?,
        u32::try_from(splice.removed).ok()?,
    ])
}

fn pf_key(rule: &pb::PortForwardingRule) -> String {
    rule.id.clone()
}

fn snat_key(rule: &pb::StaticNatRule) -> String {
    rule.id.clone()
}

/// The record of a list change from `old` to `new`, or `None` when it
/// needs a snapshot.
/// The list a change replaced, as it was before (the rest of the state
/// is the same before and after).
#[derive(Debug, Clone, Copy)]
pub enum Replaced<'a> {
    /// The ACL of the NIC with this device index (`None`: it had none).
    Acl(u32, Option<&'a pb::NetworkAcl>),
    /// An edit of the ACL of the NIC `index`, known item by item: the
    /// numbers of the items it took out, and the index in the list after
    /// it of each item it put in (ascending). Nothing is compared.
    AclEdit {
        index: u32,
        removed: &'a [u32],
        at: &'a [u32],
    },
    /// The port forwards, changed where the splice says (found when the
    /// change was checked: nothing is compared again).
    PortForwards(Splice),
    /// The static NATs, changed where the splice says.
    StaticNats(Splice),
    /// Anything else: a new snapshot.
    Other,
}

/// What `change` replaced in `old`, when `new` differs from it in that
/// list alone as far as positions tell (else [`Replaced::Other`]).
fn replaced_of<'a>(old: &'a Desired, new: &Desired, change: ListChange) -> Replaced<'a> {
    let (o, n) = (&old.config, &new.config);
    match change {
        ListChange::Acl(index) => {
            let find =
                |c: &pb::RouterConfig| c.network_acls.iter().position(|a| a.device_index == index);
            match (find(o), find(n)) {
                (Some(i), Some(j)) if i == j && o.network_acls.len() == n.network_acls.len() => {
                    Replaced::Acl(index, Some(&o.network_acls[i]))
                }
                _ => Replaced::Other,
            }
        }
        ListChange::PortForwards => Replaced::PortForwards(Splice::of(
            &o.port_forwarding_rules,
            &n.port_forwarding_rules,
        )),
        ListChange::StaticNats => {
            Replaced::StaticNats(Splice::of(&o.static_nat_rules, &n.static_nat_rules))
        }
        ListChange::Other => Replaced::Other,
    }
}

fn record_of(replaced: Replaced<'_>, new: &Desired) -> Option<JournalRecord> {
    let mut record = JournalRecord {
        generation: new.generation,
        ..Default::default()
    };
    let n = &new.config;
    match replaced {
        Replaced::Acl(index, before) => {
            // Only that list may differ (a list that appears or goes is a
            // snapshot).
            let a = before?;
            let b = n.network_acls.iter().find(|a| a.device_index == index)?;
            let (removed, changed, at) = list_diff_placed(&a.items, &b.items, acl_key)?;
            record.kind = KIND_ACL;
            record.removed = removed;
            record.at = at;
            record.acl = Some(pb::NetworkAcl {
                items: changed,
                ..labels_of(b)
            });
        }
        Replaced::AclEdit { index, removed, at } => {
            let b = n.network_acls.iter().find(|a| a.device_index == index)?;
            let items = at
                .iter()
                .map(|&i| b.items.get(i as usize).cloned())
                .collect::<Option<Vec<_>>>()?;
            record.kind = KIND_ACL;
            record.removed = removed.iter().map(u32::to_string).collect();
            record.at = at.to_vec();
            record.acl = Some(pb::NetworkAcl {
                items,
                ..labels_of(b)
            });
        }
        Replaced::PortForwards(splice) => {
            record.kind = KIND_PORT_FORWARD_SPLICE;
            record.at = splice_at(splice)?;
            record.port_forwards = n
                .port_forwarding_rules
                .get(splice.inserted_range())?
                .to_vec();
        }
        Replaced::StaticNats(splice) => {
            record.kind = KIND_STATIC_NAT_SPLICE;
            record.at = splice_at(splice)?;
            record.static_nats = n.static_nat_rules.get(splice.inserted_range())?.to_vec();
        }
        Replaced::Other => return None,
    }
    Some(record)
}

/// An ACL list's labels, without its items.
fn labels_of(acl: &pb::NetworkAcl) -> pb::NetworkAcl {
    pb::NetworkAcl {
        device_index: acl.device_index,
        mac_address: acl.mac_address.clone(),
        private_gateway: acl.private_gateway,
        acl_id: acl.acl_id.clone(),
        acl_name: acl.acl_name.clone(),
        items: Vec::new(),
    }
}

/// Replays one record onto `desired`.
fn replay(desired: &mut Desired, record: JournalRecord) -> Result<(), String> {
    let config = &mut desired.config;
    match record.kind {
        KIND_ACL => {
            let acl = record.acl.ok_or("an ACL record without its list")?;
            let list = config
                .network_acls
                .iter_mut()
                .find(|a| a.device_index == acl.device_index)
                .ok_or_else(|| format!("no ACL on eth{}", acl.device_index))?;
            let mut items = std::mem::take(&mut list.items);
            let labels = labels_of(&acl);
            if record.at.len() == acl.items.len() && !record.at.is_empty() {
                list_patch_at(&mut items, &record.removed, acl.items, &record.at, acl_key)?;
            } else {
                list_patch(&mut items, &record.removed, acl.items, acl_key);
            }
            *list = pb::NetworkAcl { items, ..labels };
        }
        KIND_PORT_FORWARDS => list_patch(
            &mut config.port_forwarding_rules,
            &record.removed,
            record.port_forwards,
            pf_key,
        ),
        KIND_STATIC_NATS => list_patch(
            &mut config.static_nat_rules,
            &record.removed,
            record.static_nats,
            snat_key,
        ),
        KIND_PORT_FORWARD_SPLICE => splice_patch(
            &mut config.port_forwarding_rules,
            &record.at,
            record.port_forwards,
        )?,
        KIND_STATIC_NAT_SPLICE => {
            splice_patch(&mut config.static_nat_rules, &record.at, record.static_nats)?
        }
        other => return Err(format!("unknown record kind {other}")),
    }
    desired.generation = record.generation;
    Ok(())
}

/// The open journal and what it follows.
#[derive(Debug, Default)]
struct Journal {
    /// Open for appending (by the writer thread); `None` until the first
    /// record after a snapshot.
    file: Option<Arc<File>>,
    /// Counts the journal files opened, so that the writer can tell the
    /// records of an abandoned one.
    epoch: u64,
    /// The checksum of the snapshot it follows; `None` when no snapshot
    /// was read or written yet (the next change writes one).
    snapshot: Option<u64>,
    snapshot_len: u64,
    len: u64,
}

/// Reads and writes the state file of one agent.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    journal: Arc<Mutex<Journal>>,
    writer: Arc<writer::Writer>,
}

/// A list change's journal record, made before the change is applied and
/// queued ([`StateStore::append`]) once it is.
#[derive(Debug)]
pub struct Record {
    /// The framed record.
    bytes: Vec<u8>,
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
        let journal = Arc::<Mutex<Journal>>::default();
        Ok(Self {
            dir: dir.to_path_buf(),
            writer: Arc::new(writer::Writer::start(Arc::clone(&journal))),
            journal,
        })
    }

    /// The journal's path.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The persisted state (the snapshot and the journal after it), or
    /// `None` on a first start.
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
        let mut desired = Desired {
            generation: request.generation,
            config: request.config.unwrap_or_default(),
        };
        let snapshot = fnv(&bytes);
        let journal_path = self.journal_path();
        let mut journal = self.journal();
        *journal = Journal {
            snapshot: Some(snapshot),
            snapshot_len: bytes.len() as u64,
            epoch: journal.epoch,
            ..Journal::default()
        };
        let text = match std::fs::read(&journal_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(desired)),
            Err(e) => return Err(io("reading", &journal_path)(e)),
        };
        let (records, good) = frames(&text);
        let follows = records
            .first()
            .and_then(|h| JournalHeader::decode(*h).ok())
            .is_some_and(|h| h.snapshot == snapshot);
        if !follows {
            // Left by a crash after a newer snapshot, or torn in its header.
            std::fs::remove_file(&journal_path).map_err(io("removing", &journal_path))?;
            return Ok(Some(desired));
        }
        let bad = |message: String| StateError::Journal {
            path: journal_path.clone(),
            message,
        };
        for payload in &records[1..] {
            let record = JournalRecord::decode(*payload).map_err(|e| bad(e.to_string()))?;
            replay(&mut desired, record).map_err(bad)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .open(&journal_path)
            .map_err(io("opening", &journal_path))?;
        if good < text.len() {
            // A torn last record: never acknowledged, cut off.
            file.set_len(good as u64)
                .and_then(|()| file.sync_all())
                .map_err(io("truncating", &journal_path))?;
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0))
            .map_err(io("opening", &journal_path))?;
        journal.file = Some(Arc::new(file));
        journal.epoch += 1;
        journal.len = good as u64;
        Ok(Some(desired))
    }

    /// Persists `new`, the state after a change to one list of `old` (the
    /// state persisted last): only what changed in that list is appended
    /// to the journal when it can be, else a snapshot is written.
    pub fn save_change(
        &self,
        old: &Desired,
        new: &Desired,
        change: ListChange,
    ) -> Result<(), StateError> {
        self.save_replaced(replaced_of(old, new, change), new)
    }

    /// [`StateStore::save_change`] given the list the change replaced
    /// (the agent changes its state in place and keeps only that); returns
    /// once the change is on disk.
    pub fn save_replaced(&self, replaced: Replaced<'_>, new: &Desired) -> Result<(), StateError> {
        match self.journal_record(replaced, new) {
            Some(record) => {
                self.append(record, new)?;
                self.flush()
            }
            None => self.save(new),
        }
    }

    /// The journal record of a change to `new` that replaced `replaced`,
    /// or `None` when the change needs a snapshot (not a list change, no
    /// snapshot to follow, or a journal grown past the snapshot's size).
    pub fn journal_record(&self, replaced: Replaced<'_>, new: &Desired) -> Option<Record> {
        {
            let journal = self.journal();
            let room = journal.len < journal.snapshot_len.max(1 << 20);
            if journal.snapshot.is_none() || !room {
                return None;
            }
        }
        let record = record_of(replaced, new)?;
        Some(Record {
            bytes: frame(&record.encode_to_vec()),
        })
    }

    /// Queues `record` (made by [`StateStore::journal_record`] for `new`)
    /// to be appended and synced after the records queued before it, and
    /// returns without waiting for the disk; [`StateStore::flush`] waits.
    /// When the journal was abandoned meanwhile (an append failed), a
    /// snapshot of `new` is written instead, before returning.
    pub fn append(&self, record: Record, new: &Desired) -> Result<(), StateError> {
        let path = self.journal_path();
        let mut journal = self.journal();
        if journal.snapshot.is_none() {
            drop(journal);
            return self.save(new);
        }
        let mut bytes = Vec::new();
        let created = journal.file.is_none();
        if created {
            let header = JournalHeader {
                snapshot: journal.snapshot.unwrap_or_default(),
            };
            bytes.extend(frame(&header.encode_to_vec()));
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(io("creating", &path));
            let file = match file {
                Ok(file) => file,
                Err(e) => {
                    journal.snapshot = None;
                    return Err(e);
                }
            };
            journal.file = Some(Arc::new(file));
            journal.epoch += 1;
            journal.len = 0;
        }
        bytes.extend(record.bytes);
        journal.len += bytes.len() as u64;
        let append = writer::Append {
            file: Arc::clone(journal.file.as_ref().expect("opened above")),
            path,
            bytes,
            epoch: journal.epoch,
            sync_dir: created.then(|| self.dir.clone()),
        };
        drop(journal);
        self.writer.queue(append, &self.journal);
        Ok(())
    }

    /// Waits until every queued record is on disk; the first append that
    /// failed since the last call is the error (the journal is abandoned
    /// then, and the next save writes a snapshot).
    pub fn flush(&self) -> Result<(), StateError> {
        self.writer.flush();
        match self.writer.take_failure() {
            None => Ok(()),
            Some(message) => Err(StateError::JournalWrite { message }),
        }
    }

    /// The first append that failed since the last call (without waiting
    /// for those queued), for the agent to report and repair with a
    /// snapshot.
    pub fn take_failure(&self) -> Option<String> {
        self.writer.take_failure()
    }

    /// Test hook (not a product default): every journal append waits
    /// `delay` before it is written, so that a test can kill the agent
    /// between its answer and the record's sync.
    pub fn set_journal_delay(&self, delay: std::time::Duration) {
        self.writer.set_delay(delay);
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
        let journal = self.journal_path();
        if journal.exists() {
            let aside = self.dir.join(format!("{JOURNAL_FILE}.corrupt-{stamp}"));
            std::fs::rename(&journal, &aside).map_err(io("moving aside", &journal))?;
        }
        let mut journal = self.journal();
        *journal = Journal {
            epoch: journal.epoch,
            ..Journal::default()
        };
        Ok(condition)
    }

    /// Why the agent still waits for a resync (see [`StateStore::set_aside`]),
    /// or `None`.
    pub fn awaiting_resync(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(AWAITING_RESYNC_FILE)).ok()
    }

    /// Persists `desired` atomically (after the journal records queued
    /// before, which it supersedes).
    pub fn save(&self, desired: &Desired) -> Result<(), StateError> {
        // The queued records go first: none may land in the journal that
        // follows this snapshot. A failed one is superseded by it.
        self.writer.flush();
        if let Some(failure) = self.writer.take_failure() {
            tracing::warn!(error = %failure, "a journal append failed; a snapshot replaces the journal");
        }
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
        // The journal of the previous snapshot is stale now (and would be
        // recognised as such if this removal were lost).
        let mut journal = self.journal();
        journal.file = None;
        let journal_path = self.journal_path();
        match std::fs::remove_file(&journal_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &journal_path)(e)),
        }
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &self.dir))?;
        *journal = Journal {
            snapshot: Some(fnv(&bytes)),
            snapshot_len: bytes.len() as u64,
            epoch: journal.epoch,
            ..Journal::default()
        };
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

    fn sample() -> Desired {
        Desired {
            generation: 5,
            config: crate::testing::sample_config(),
        }
    }

    /// `desired` with item `k` of the first ACL's port set to `port`.
    fn with_port(desired: &Desired, k: usize, port: u32) -> Desired {
        let mut next = desired.clone();
        next.generation += 1;
        next.config.network_acls[0].items[k].start_port = Some(port);
        next.config.network_acls[0].items[k].end_port = Some(port);
        next
    }

    #[test]
    fn list_changes_are_journaled_small_and_replay_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        store
            .save_change(&first, &second, ListChange::Acl(index))
            .unwrap();
        // An item removed, one added, the list relabelled.
        let mut third = second.clone();
        third.generation += 1;
        let acl = &mut third.config.network_acls[0];
        let gone = acl.items.remove(0);
        acl.items.push(pb::AclItem { number: 99, ..gone });
        acl.acl_name = "renamed".into();
        store
            .save_change(&second, &third, ListChange::Acl(index))
            .unwrap();
        // A port forward's target changes, one goes.
        let mut fourth = third.clone();
        fourth.generation += 1;
        fourth.config.port_forwarding_rules[1].private_ip = "10.1.2.99".into();
        fourth.config.port_forwarding_rules.remove(0);
        store
            .save_change(&third, &fourth, ListChange::PortForwards)
            .unwrap();
        let journal = std::fs::metadata(store.journal_path()).unwrap().len();
        let snapshot = std::fs::metadata(store.path()).unwrap().len();
        assert!(
            journal < snapshot,
            "{journal} bytes journaled, {snapshot} in the snapshot"
        );
        let again = StateStore::open(dir.path()).unwrap();
        assert_eq!(again.load().unwrap(), Some(fourth.clone()));
        // The reopened journal takes more records.
        let fifth = with_port(&fourth, 0, 8082);
        again
            .save_change(&fourth, &fifth, ListChange::Acl(index))
            .unwrap();
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(fifth)
        );
    }

    #[test]
    fn a_torn_record_is_dropped_and_the_journal_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        store
            .save_change(&first, &second, ListChange::Acl(index))
            .unwrap();
        let third = with_port(&second, 1, 8082);
        store
            .save_change(&second, &third, ListChange::Acl(index))
            .unwrap();
        // A crash in the middle of the last append.
        let len = std::fs::metadata(store.journal_path()).unwrap().len();
        let file = OpenOptions::new()
            .write(true)
            .open(store.journal_path())
            .unwrap();
        file.set_len(len - 3).unwrap();
        let again = StateStore::open(dir.path()).unwrap();
        assert_eq!(again.load().unwrap(), Some(second.clone()));
        let fourth = with_port(&second, 1, 8083);
        again
            .save_change(&second, &fourth, ListChange::Acl(index))
            .unwrap();
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(fourth)
        );
    }

    #[test]
    fn a_journal_left_behind_by_a_newer_snapshot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        store
            .save_change(&first, &second, ListChange::Acl(index))
            .unwrap();
        let old_journal = std::fs::read(store.journal_path()).unwrap();
        let mut third = second.clone();
        third.generation += 1;
        third.config.static_routes.clear();
        store
            .save_change(&second, &third, ListChange::Other)
            .unwrap();
        assert!(
            !store.journal_path().exists(),
            "a snapshot ends the journal"
        );
        // As if the crash came between the snapshot and the removal.
        std::fs::write(store.journal_path(), old_journal).unwrap();
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(third)
        );
    }

    #[test]
    fn a_reordered_list_is_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let mut second = first.clone();
        second.generation += 1;
        second.config.network_acls[0].items.reverse();
        let index = first.config.network_acls[0].device_index;
        store
            .save_change(&first, &second, ListChange::Acl(index))
            .unwrap();
        assert!(!store.journal_path().exists());
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(second)
        );
    }

    #[test]
    fn nat_changes_are_journaled_as_splices_and_earlier_keyed_records_still_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        // A forward inserted in the middle and a static NAT pointed
        // elsewhere: splices, whatever the order.
        let mut second = first.clone();
        second.generation += 1;
        let mut extra = second.config.port_forwarding_rules[0].clone();
        extra.id = "pf-middle".into();
        extra.public_start_port = 7000;
        extra.private_start_port = 7000;
        second.config.port_forwarding_rules.insert(1, extra);
        let replaced = Replaced::PortForwards(Splice::of(
            &first.config.port_forwarding_rules,
            &second.config.port_forwarding_rules,
        ));
        let record = record_of(replaced, &second).unwrap();
        assert_eq!(record.kind, KIND_PORT_FORWARD_SPLICE);
        assert_eq!(
            (record.at.as_slice(), record.port_forwards.len()),
            (&[1, 0][..], 1)
        );
        store.save_replaced(replaced, &second).unwrap();
        let mut third = second.clone();
        third.generation += 1;
        third.config.static_nat_rules[0].private_ip = "10.1.2.7".into();
        store
            .save_change(&second, &third, ListChange::StaticNats)
            .unwrap();
        // An earlier agent's record: the forwards by key (one removed).
        let mut fourth = third.clone();
        fourth.generation += 1;
        let gone = fourth.config.port_forwarding_rules.remove(0);
        let keyed = JournalRecord {
            generation: fourth.generation,
            kind: KIND_PORT_FORWARDS,
            removed: vec![gone.id.clone()],
            ..Default::default()
        };
        let bytes = frame(&keyed.encode_to_vec());
        store.append(Record { bytes }, &fourth).unwrap();
        store.flush().unwrap();
        assert!(store.journal_path().exists());
        let again = StateStore::open(dir.path()).unwrap();
        assert_eq!(again.load().unwrap(), Some(fourth));
    }

    #[test]
    fn a_splice_past_the_end_of_its_list_is_refused() {
        let mut list = vec![1, 2, 3];
        assert!(splice_patch(&mut list, &[2, 2], vec![9]).is_err());
        assert!(splice_patch(&mut list, &[1], vec![9]).is_err());
        assert_eq!(list, [1, 2, 3]);
        splice_patch(&mut list, &[1, 2], vec![9]).unwrap();
        assert_eq!(list, [1, 9]);
    }

    #[test]
    fn diffs_replay_to_the_new_list() {
        let old: Vec<u32> = vec![1, 2, 3, 4];
        let key = |v: &u32| (v / 10).to_string() + &(v % 10).to_string();
        for new in [vec![1, 3, 4, 7], vec![2, 3], vec![1, 2, 3, 4, 5, 6], vec![]] {
            let (removed, changed) = list_diff(&old, &new, key).expect("replayable");
            let mut list = old.clone();
            list_patch(&mut list, &removed, changed, key);
            assert_eq!(list, new);
        }
        assert!(list_diff(&old, &[4, 1], key).is_none(), "reordered");
        assert!(list_diff(&old, &[5, 5], key).is_none(), "repeated key");
        // Lists of unique keys: items replaced, removed, added or
        // renumbered anywhere replay in place.
        let old: Vec<(u32, char)> = vec![(1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')];
        let key = |v: &(u32, char)| v.0.to_string();
        for new in [
            vec![(1, 'a'), (2, 'z'), (3, 'c'), (4, 'd')],
            vec![(1, 'a'), (2, 'z'), (3, 'y'), (4, 'd')],
            vec![(1, 'a'), (3, 'c'), (4, 'd')],
            vec![(1, 'a'), (7, 'z'), (3, 'c'), (4, 'd')],
            vec![(9, 'x'), (1, 'a'), (7, 'z'), (3, 'c'), (4, 'd'), (8, 'w')],
            vec![(1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')],
            vec![],
            vec![(1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')],
        ] {
            let (removed, changed, at) = list_diff_placed(&old, &new, key).expect("replayable");
            assert!(changed.len() <= 3, "only the middle: {changed:?}");
            let mut list = old.clone();
            list_patch_at(&mut list, &removed, changed, &at, key).unwrap();
            assert_eq!(list, new);
        }
        let swapped = vec![(1, 'a'), (3, 'c'), (2, 'b'), (4, 'd')];
        assert!(list_diff_placed(&old, &swapped, key).is_none(), "reordered");
    }

    #[test]
    fn a_renumbered_item_is_journaled_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let mut second = first.clone();
        second.generation += 1;
        second.config.network_acls[0].items[0].number += 1000;
        let index = first.config.network_acls[0].device_index;
        store
            .save_change(&first, &second, ListChange::Acl(index))
            .unwrap();
        assert!(store.journal_path().exists(), "journaled, not a snapshot");
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(second)
        );
    }

    #[test]
    fn a_record_queued_after_the_change_replays_once_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        let replaced = Replaced::Acl(index, Some(&first.config.network_acls[0]));
        let record = store
            .journal_record(replaced, &second)
            .expect("a list change");
        store.append(record, &second).unwrap();
        store.flush().unwrap();
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(second)
        );
    }

    #[test]
    fn a_snapshot_waits_for_the_records_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.set_journal_delay(std::time::Duration::from_millis(50));
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        let replaced = Replaced::Acl(index, Some(&first.config.network_acls[0]));
        let record = store.journal_record(replaced, &second).unwrap();
        store.append(record, &second).unwrap();
        // Still queued: the snapshot of a later state supersedes it, and
        // the record must not land in the journal after that snapshot.
        let mut third = second.clone();
        third.generation += 1;
        third.config.static_routes.clear();
        store.save(&third).unwrap();
        assert!(
            !store.journal_path().exists(),
            "no journal after the snapshot"
        );
        assert_eq!(
            StateStore::open(dir.path()).unwrap().load().unwrap(),
            Some(third)
        );
    }

    #[test]
    fn a_record_not_yet_written_leaves_the_state_before_it() {
        // What a crash between the answer and the write leaves: the
        // journal holds no record of the change, and the load gives the
        // state (and generation) before it.
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.set_journal_delay(std::time::Duration::from_millis(300));
        let first = sample();
        store.save(&first).unwrap();
        let index = first.config.network_acls[0].device_index;
        let second = with_port(&first, 1, 8081);
        let replaced = Replaced::Acl(index, Some(&first.config.network_acls[0]));
        let record = store.journal_record(replaced, &second).unwrap();
        store.append(record, &second).unwrap();
        let loaded = StateStore::open(dir.path())
            .unwrap()
            .load()
            .unwrap()
            .unwrap();
        assert_eq!(loaded.generation, first.generation);
        assert_eq!(loaded, first);
        store.flush().unwrap();
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_router() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(store.path(), b"\xff\xff\xff").unwrap();
        assert!(matches!(store.load(), Err(StateError::Decode { .. })));
    }
}

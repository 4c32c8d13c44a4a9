//! The incremental nftables path: set and map element changes sent to
//! nf_tables over netlink, one NFNL batch per change, on one socket the agent
//! opens once in its router's namespace and keeps.
//!
//! A batch is `BATCH_BEGIN`, then `DELSETELEM` / `NEWSETELEM` messages, then
//! `BATCH_END`; every message asks for an acknowledgement, and the kernel
//! applies the batch as one transaction or, when any message fails, none of
//! it. Elements carry what the nft scripts give them: a counter expression
//! (starting at counts carried over from the elements they replace) and the
//! comment, as nft's user data. `GETSETELEM` reads single elements back (an
//! item's counts before its elements are replaced), so a one-item change
//! never lists a whole set.
//!
//! Why hand-encoded: the messages needed are few (three message types and
//! the element attributes), and no crate fits. `nftnl`/`nftnl-sys` bind the
//! C library libnftnl; `rustables` is pure Rust but its set elements carry a
//! key only (no key end for concatenated intervals, no expressions, no user
//! data) and it calls itself rough; `netlink-packet-netfilter` covers
//! nflog and conntrack, not nf_tables; the `nftables` crate drives the nft
//! binary through JSON (a process per change, what this replaces). The
//! socket is a plain `AF_NETLINK` socket through `libc`, already a
//! dependency. The elements are encoded from the same text the nft scripts
//! use (the planner's [`crate::plan::nft::Set`] elements and spec), so there
//! is one plan and two ways of loading it; a set whose type this module does
//! not encode makes the caller take the nft path.
//!
//! ACL chains rebuilt whole (a new layer, a tier's list replaced) go in the
//! same kind of batch, with their sets created and their rules encoded for
//! the few shapes those chains have ([`chains`]); counts of items that
//! stay are read with one `GETSETELEM` dump per old set. The cold apply,
//! chains that come or go and base chains stay on `nft -f` (see
//! [`super::nft`]).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::plan::nft::{ElementDelta, TABLE};

mod chains;
pub use chains::{ChainBatch, encode_chain_changes};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ROOT | NLM_F_MATCH`: every element of the set.
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_INET: u8 = 1;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// The verdict `jump`.
const NFT_JUMP: i32 = -3;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// libnftnl's user data type of an element's comment.
const UDATA_SET_ELEM_COMMENT: u8 = 0;

/// Errors of the netlink path.
#[derive(Debug, thiserror::Error)]
pub enum NftNetlinkError {
    /// An element or set the module does not encode (the caller takes the
    /// nft path).
    #[error("cannot encode {what}: {why}")]
    Encode { what: String, why: String },
    #[error("nf_tables netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a message; the batch was rolled back.
    #[error("nf_tables refused {what}: {source}")]
    Refused {
        what: String,
        source: std::io::Error,
    },
}

fn encode_err(what: &str, why: impl Into<String>) -> NftNetlinkError {
    NftNetlinkError::Encode {
        what: what.to_string(),
        why: why.into(),
    }
}

/// One field of a set's key or a map's data, as nft's type names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Ipv4,
    Ipv6,
    /// `inet_proto`, `icmp_type`, `icmp_code`, `icmpv6_type`, `icmpv6_code`.
    Byte,
    /// `inet_service` (network order).
    Service,
    /// `mark` (host order).
    Mark,
    /// `ifname`: the name, zero-padded to 16 bytes.
    Ifname,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "ipv4_addr" => Field::Ipv4,
            "ipv6_addr" => Field::Ipv6,
            "inet_proto" | "icmp_type" | "icmp_code" | "icmpv6_type" | "icmpv6_code" => Field::Byte,
            "inet_service" => Field::Service,
            "mark" => Field::Mark,
            "ifname" => Field::Ifname,
            _ => return None,
        })
    }

    /// The lowest and highest value of `text` (`v`, `lo-hi`, or for an
    /// address `a/len`), encoded (in buffers on the stack: ten thousand
    /// elements are parsed when a list is replaced).
    fn values(self, text: &str) -> Result<(Value, Value), String> {
        let bad = || format!("{text:?} is not a {self:?} value");
        match self {
            Field::Ipv4 => {
                let (lo, hi) = if let Some((addr, len)) = text.split_once('/') {
                    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
                    let len: u32 = len.parse().map_err(|_| bad())?;
                    if len > 32 {
                        return Err(bad());
                    }
                    let host = u32::MAX.checked_shr(len).unwrap_or(0);
                    let lo = u32::from(addr) & !host;
                    (lo, lo | host)
                } else if let Some((a, b)) = text.split_once('-') {
                    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
                    let b: Ipv4Addr = b.parse().map_err(|_| bad())?;
                    (u32::from(a), u32::from(b))
                } else {
                    let a: Ipv4Addr = text.parse().map_err(|_| bad())?;
                    (u32::from(a), u32::from(a))
                };
                Ok((Value::of(&lo.to_be_bytes()), Value::of(&hi.to_be_bytes())))
            }
            Field::Ipv6 => {
                let (lo, hi) = if let Some((addr, len)) = text.split_once('/') {
                    let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
                    let len: u32 = len.parse().map_err(|_| bad())?;
                    if len > 128 {
                        return Err(bad());
                    }
                    let host = u128::MAX.checked_shr(len).unwrap_or(0);
                    let lo = u128::from(addr) & !host;
                    (lo, lo | host)
                } else if let Some((a, b)) = text.split_once('-') {
                    let a: Ipv6Addr = a.parse().map_err(|_| bad())?;
                    let b: Ipv6Addr = b.parse().map_err(|_| bad())?;
                    (u128::from(a), u128::from(b))
                } else {
                    let a: Ipv6Addr = text.parse().map_err(|_| bad())?;
                    (u128::from(a), u128::from(a))
                };
                Ok((Value::of(&lo.to_be_bytes()), Value::of(&hi.to_be_bytes())))
            }
            Field::Ifname => {
                let name = text
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .filter(|n| {
                        !n.is_empty()
                            && n.len() < 16
                            && n.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
                    })
                    .ok_or_else(bad)?;
                let mut bytes = [0u8; 16];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Ok((Value::of(&bytes), Value::of(&bytes)))
            }
            Field::Byte | Field::Service | Field::Mark => {
                let number = |t: &str| -> Result<u64, String> {
                    match t.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad()),
                        None => t.parse::<u64>().map_err(|_| bad()),
                    }
                };
                let (lo, hi) = match text.split_once('-') {
                    Some((a, b)) => (number(a)?, number(b)?),
                    None => (number(text)?, number(text)?),
                };
                let encode = |v: u64| -> Result<Value, String> {
                    match self {
                        Field::Byte => u8::try_from(v).map(|v| Value::of(&[v])).map_err(|_| bad()),
                        Field::Service => u16::try_from(v)
                            .map(|v| Value::of(&v.to_be_bytes()))
                            .map_err(|_| bad()),
                        _ => u32::try_from(v)
                            .map(|v| Value::of(&v.to_ne_bytes()))
                            .map_err(|_| bad()),
                    }
                };
                Ok((encode(lo)?, encode(hi)?))
            }
        }
    }
}

/// One field's encoded value: at most 16 bytes (an IPv6 address, an
/// interface name).
#[derive(Debug, Clone, Copy)]
struct Value {
    bytes: [u8; 16],
    len: usize,
}

impl Value {
    fn of(bytes: &[u8]) -> Value {
        let mut out = Value {
            bytes: [0; 16],
            len: bytes.len(),
        };
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        out
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A set's or map's type, from the spec the planner writes
/// (`type ipv4_addr . inet_proto . inet_service; flags interval; counter;`,
/// `type ipv4_addr : mark;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetType {
    key: Vec<Field>,
    data: Vec<Field>,
    /// A verdict map: each element's data is `jump <chain>`.
    verdicts: bool,
    interval: bool,
}

impl SetType {
    /// The type of a set with `spec`; an error for what this module does
    /// not encode (a single-field interval set, an unknown type).
    pub fn parse(spec: &str) -> Result<SetType, NftNetlinkError> {
        let mut key = Vec::new();
        let mut data = Vec::new();
        let mut verdicts = false;
        let mut interval = false;
        for clause in spec.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            if let Some(types) = clause.strip_prefix("type ") {
                let (k, d) = match types.split_once(" : ") {
                    Some((k, d)) => (k, Some(d)),
                    None => (types, None),
                };
                let fields = |text: &str| -> Result<Vec<Field>, NftNetlinkError> {
                    text.split(" . ")
                        .map(|f| {
                            Field::parse(f.trim())
                                .ok_or_else(|| encode_err(spec, format!("type {f}")))
                        })
                        .collect()
                };
                key = fields(k)?;
                match d {
                    Some("verdict") => verdicts = true,
                    Some(d) => data = fields(d)?,
                    None => {}
                }
            } else if clause == "flags interval" {
                interval = true;
            } else if clause.starts_with("flags") {
                return Err(encode_err(spec, "flags other than interval"));
            }
        }
        if key.is_empty() {
            return Err(encode_err(spec, "no type"));
        }
        if interval && key.len() == 1 {
            // Single-field intervals are stored as start and end elements,
            // which the nft path handles.
            return Err(encode_err(spec, "single-field interval set"));
        }
        Ok(SetType {
            key,
            data,
            verdicts,
            interval,
        })
    }
}

/// One element, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    key: Vec<u8>,
    /// The end of the key's range (interval sets).
    key_end: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    /// A verdict map's element: the chain it jumps to.
    jump: Option<String>,
    /// `Some` for an element of a set that counts: the starting counts.
    counter: Option<(u64, u64)>,
    comment: Option<String>,
}

/// The lowest and highest key (or data) of `text`, its fields' values
/// concatenated, each padded to 4 bytes when there are several (nf_tables
/// keeps each field of a concatenation in its own registers).
fn parse_fields(fields: &[Field], text: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let count = text.split(" . ").count();
    if count != fields.len() {
        return Err(format!(
            "{text:?} has {count} fields, the type {}",
            fields.len()
        ));
    }
    let capacity = fields.len() * 4 + 16;
    let (mut lo, mut hi) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    for (field, part) in fields.iter().zip(text.split(" . ")) {
        let (a, b) = field.values(part.trim())?;
        lo.extend_from_slice(a.as_slice());
        hi.extend_from_slice(b.as_slice());
        if fields.len() > 1 {
            for v in [&mut lo, &mut hi] {
                while !v.len().is_multiple_of(4) {
                    v.push(0);
                }
            }
        }
    }
    Ok((lo, hi))
}

impl Element {
    /// Parses an element as the planner writes it: `key [: data]
    /// [counter packets P bytes B] [comment "text"]`. `counting`: the set
    /// declares `counter`, so the element carries one.
    pub fn parse(ty: &SetType, text: &str, counting: bool) -> Result<Element, NftNetlinkError> {
        let fail = |why: String| encode_err(text, why);
        let (rest, comment) = match text.split_once(" comment \"") {
            Some((rest, tag)) => {
                let tag = tag
                    .strip_suffix('"')
                    .ok_or_else(|| fail("unterminated comment".into()))?;
                if tag.contains('"') || tag.len() > 128 {
                    return Err(fail("comment".into()));
                }
                (rest, Some(tag.to_string()))
            }
            None => (text, None),
        };
        let (rest, counts) = match rest.split_once(" counter packets ") {
            Some((rest, counts)) => {
                let mut words = counts.split_whitespace();
                let packets = words.next().and_then(|w| w.parse::<u64>().ok());
                let bytes = (words.next() == Some("bytes"))
                    .then(|| words.next().and_then(|w| w.parse::<u64>().ok()))
                    .flatten();
                match (packets, bytes, words.next()) {
                    (Some(p), Some(b), None) => (rest, Some((p, b))),
                    _ => return Err(fail("counter".into())),
                }
            }
            None => (rest, None),
        };
        let (key_text, data_text) = match rest.split_once(" : ") {
            Some((k, d)) => (k, Some(d)),
            None => (rest, None),
        };
        if data_text.is_some() == (ty.data.is_empty() && !ty.verdicts) {
            return Err(fail("data does not match the set's type".into()));
        }
        // A verdict map's element: `jump <chain>`, the only verdict the
        // planner writes in one.
        let jump = match data_text {
            Some(d) if ty.verdicts => {
                let chain = d
                    .strip_prefix("jump ")
                    .filter(|c| {
                        !c.is_empty()
                            && c.len() < 256
                            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .ok_or_else(|| fail("not a jump to a chain".into()))?;
                Some(chain.to_string())
            }
            _ => None,
        };
        let (key, key_end) = parse_fields(&ty.key, key_text).map_err(&fail)?;
        if !ty.interval && key != key_end {
            return Err(fail("a range in a set without intervals".into()));
        }
        let data = match data_text {
            Some(_) if ty.verdicts => None,
            Some(d) => {
                let (lo, hi) = parse_fields(&ty.data, d).map_err(&fail)?;
                if lo != hi {
                    return Err(fail("a range as map data".into()));
                }
                Some(lo)
            }
            None => None,
        };
        Ok(Element {
            key,
            key_end: ty.interval.then_some(key_end),
            data,
            jump,
            counter: (counting || counts.is_some()).then(|| counts.unwrap_or_default()),
            comment,
        })
    }
}

/// Element changes of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElements {
    pub set: String,
    pub delete: Vec<Element>,
    pub add: Vec<Element>,
}

/// The planner's element deltas, encoded; an [`NftNetlinkError::Encode`]
/// when one of them is not encodable (the change then takes the nft path).
pub fn encode_deltas(deltas: &[ElementDelta]) -> Result<Vec<SetElements>, NftNetlinkError> {
    deltas
        .iter()
        .map(|delta| {
            let ty = SetType::parse(&delta.spec)?;
            let counting = delta.spec.contains("counter;");
            Ok(SetElements {
                set: delta.set.clone(),
                delete: delta
                    .delete
                    .iter()
                    .map(|e| Element::parse(&ty, e, false))
                    .collect::<Result<_, _>>()?,
                add: delta
                    .add
                    .iter()
                    .map(|e| Element::parse(&ty, e, counting))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// A netlink message under construction.
struct Message {
    buf: Vec<u8>,
    /// Offsets of the open nests.
    nests: Vec<usize>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Message {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, value: &str) {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn open(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn close(&mut self) {
        let start = self.nests.pop().expect("an open nest");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        debug_assert!(self.nests.is_empty());
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&self.buf);
    }
}

fn msg_type(kind: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | kind
}

fn put_element(m: &mut Message, e: &Element, full: bool) {
    m.open(NFTA_LIST_ELEM);
    m.open(NFTA_SET_ELEM_KEY);
    m.attr(NFTA_DATA_VALUE, &e.key);
    m.close();
    if let Some(end) = &e.key_end {
        m.open(NFTA_SET_ELEM_KEY_END);
        m.attr(NFTA_DATA_VALUE, end);
        m.close();
    }
    if full {
        if let Some(data) = &e.data {
            m.open(NFTA_SET_ELEM_DATA);
            m.attr(NFTA_DATA_VALUE, data);
            m.close();
        }
        if let Some(chain) = &e.jump {
            m.open(NFTA_SET_ELEM_DATA);
            m.open(NFTA_DATA_VERDICT);
            m.attr(NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
            m.attr_str(NFTA_VERDICT_CHAIN, chain);
            m.close();
            m.close();
        }
        if let Some((packets, bytes)) = e.counter {
            m.open(NFTA_SET_ELEM_EXPRESSIONS);
            m.open(NFTA_LIST_ELEM);
            m.attr_str(NFTA_EXPR_NAME, "counter");
            m.open(NFTA_EXPR_DATA);
            m.attr(NFTA_COUNTER_BYTES, &bytes.to_be_bytes());
            m.attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes());
            m.close();
            m.close();
            m.close();
        }
        if let Some(comment) = &e.comment {
            let mut udata = vec![UDATA_SET_ELEM_COMMENT, (comment.len() + 1) as u8];
            udata.extend_from_slice(comment.as_bytes());
            udata.push(0);
            m.attr(NFTA_SET_ELEM_USERDATA, &udata);
        }
    }
    m.close();
}

fn element_list(kind: u16, flags: u16, seq: u32, set: &str, elements: &[Element]) -> Message {
    element_list_of(kind, flags, seq, (set, None), elements)
}

/// [`element_list`] for a set named and, when it is created in the same
/// batch, given by its batch id too.
fn element_list_of(
    kind: u16,
    flags: u16,
    seq: u32,
    (set, set_id): (&str, Option<u32>),
    elements: &[Element],
) -> Message {
    let mut m = Message::new(msg_type(kind), flags, seq, NFPROTO_INET, 0);
    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
    m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    if let Some(id) = set_id {
        m.attr(NFTA_SET_ELEM_LIST_SET_ID, &id.to_be_bytes());
    }
    m.open(NFTA_SET_ELEM_LIST_ELEMENTS);
    for e in elements {
        put_element(&mut m, e, kind == NFT_MSG_NEWSETELEM);
    }
    m.close();
    m
}

/// The socket's send and receive buffers (bytes).
const SEND_BUFFER: libc::c_int = 16 << 20;

/// At most this many elements in one message (a message must fit in the
/// kernel's 64 KiB attribute lengths).
const ELEMENTS_PER_MESSAGE: usize = 200;

/// One batch making `changes` (deletions first, then additions, so an
/// element replaced by one with the same key is deleted before it is added
/// again), with sequence numbers from `seq`. Returns the bytes and the
/// sequence numbers of the messages that are acknowledged.
pub fn encode_batch(seq: u32, changes: &[SetElements]) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::new();
    let mut next = seq;
    let mut acked = Vec::new();
    Message::new(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        next,
        0,
        NFNL_SUBSYS_NFTABLES,
    )
    .finish(&mut out);
    next += 1;
    for (kind, flags) in [
        (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
        (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
    ] {
        for change in changes {
            let elements = if kind == NFT_MSG_DELSETELEM {
                &change.delete
            } else {
                &change.add
            };
            for chunk in elements.chunks(ELEMENTS_PER_MESSAGE) {
                element_list(kind, flags, next, &change.set, chunk).finish(&mut out);
                acked.push(next);
                next += 1;
            }
        }
    }
    Message::new(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        next,
        0,
        NFNL_SUBSYS_NFTABLES,
    )
    .finish(&mut out);
    (out, acked)
}

/// Walks netlink attributes: (type without flags, payload).
fn attrs(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if len < 4 || len > bytes.len() {
            return None;
        }
        let payload = &bytes[4..len];
        let step = (len + 3) & !3;
        bytes = &bytes[step.min(bytes.len())..];
        Some((kind, payload))
    })
}

fn nested(bytes: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(bytes).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

fn be64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// A counter expression's counts (packets, bytes), from an `NFTA_EXPR_*`
/// attribute list.
fn counter_of_expr(expr: &[u8]) -> Option<(u64, u64)> {
    let name = nested(expr, NFTA_EXPR_NAME)?;
    if name.split(|b| *b == 0).next() != Some(b"counter") {
        return None;
    }
    let data = nested(expr, NFTA_EXPR_DATA)?;
    Some((
        be64(nested(data, NFTA_COUNTER_PACKETS)?)?,
        be64(nested(data, NFTA_COUNTER_BYTES)?)?,
    ))
}

/// What a `NEWSETELEM` answer to a `GETSETELEM` says of one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadElement {
    pub key: Vec<u8>,
    pub comment: Option<String>,
    pub counter: Option<(u64, u64)>,
}

/// The elements of a `NEWSETELEM` message's attributes (after the
/// nfgenmsg header).
fn read_elements(payload: &[u8]) -> Vec<ReadElement> {
    let Some(list) = nested(payload, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    attrs(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .map(|(_, elem)| {
            let key = nested(elem, NFTA_SET_ELEM_KEY)
                .and_then(|k| nested(k, NFTA_DATA_VALUE))
                .unwrap_or_default()
                .to_vec();
            let comment = nested(elem, NFTA_SET_ELEM_USERDATA).and_then(|mut u| {
                while u.len() >= 2 {
                    let (kind, len) = (u[0], u[1] as usize);
                    let value = u.get(2..2 + len)?;
                    if kind == UDATA_SET_ELEM_COMMENT {
                        let text = value.split(|b| *b == 0).next().unwrap_or_default();
                        return String::from_utf8(text.to_vec()).ok();
                    }
                    u = &u[2 + len..];
                }
                None
            });
            let counter = nested(elem, NFTA_SET_ELEM_EXPR)
                .and_then(counter_of_expr)
                .or_else(|| {
                    nested(elem, NFTA_SET_ELEM_EXPRESSIONS).and_then(|list| {
                        attrs(list)
                            .filter(|(k, _)| *k == NFTA_LIST_ELEM)
                            .find_map(|(_, e)| counter_of_expr(e))
                    })
                });
            ReadElement {
                key,
                comment,
                counter,
            }
        })
        .collect()
}

/// One netlink message received: type, sequence number, payload after the
/// 16-byte header.
fn messages(mut bytes: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(bytes[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
        let seq = u32::from_ne_bytes(bytes[8..12].try_into().ok()?);
        if len < 16 || len > bytes.len() {
            return None;
        }
        let payload = &bytes[16..len];
        let step = (len + 3) & !3;
        bytes = &bytes[step.min(bytes.len())..];
        Some((kind, seq, payload))
    })
}

/// The error code of an `NLMSG_ERROR` payload (0 is an acknowledgement).
fn error_code(payload: &[u8]) -> i32 {
    payload.get(..4).map_or(-libc::EIO, |b| {
        i32::from_ne_bytes(b.try_into().unwrap_or([0; 4]))
    })
}

/// The agent's nf_tables netlink socket, opened in its router's namespace.
#[derive(Debug)]
pub struct NftNetlink {
    fd: OwnedFd,
    seq: u32,
}

impl NftNetlink {
    /// Opens and binds the socket (in the calling thread's namespace).
    pub fn open() -> Result<NftNetlink, NftNetlinkError> {
        // SAFETY: plain socket(2); the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: fd is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid; the kernel picks the port.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // A batch goes in one datagram, which must fit the send buffer: a
        // large element change (a list that grows by thousands) needs more
        // than the default. Forcing it needs CAP_NET_ADMIN, which the agent
        // has; without it the default stays and a batch too large for it
        // fails before anything is sent (the caller takes the nft path).
        let size: libc::c_int = SEND_BUFFER;
        for option in [libc::SO_SNDBUFFORCE, libc::SO_RCVBUFFORCE] {
            // SAFETY: an int option of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    &size as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
        }
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: a timeval option of the right size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &timeout as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() | 1);
        Ok(NftNetlink { fd, seq: seed })
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftNetlinkError> {
        // SAFETY: a zeroed sockaddr_nl addresses the kernel (port 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: bytes and kernel are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
                &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if sent as usize != bytes.len() {
            return Err(std::io::Error::other("short netlink send").into());
        }
        Ok(())
    }

    /// Receives one datagram; `None` when `wait` is false and none is
    /// queued.
    fn recv(&self, buf: &mut [u8], wait: bool) -> Result<Option<usize>, NftNetlinkError> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: buf is valid for its length.
        let got = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if !wait && e.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(e.into());
        }
        Ok(Some(got as usize))
    }

    fn next_seq(&mut self, count: usize) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(count as u32 + 2);
        if self.seq < first {
            // Wrapped: start again low, clear of the kernel's own numbers.
            self.seq = 1;
            return self.next_seq(count);
        }
        first
    }

    /// Applies `changes` in one batch: all of them, or (on any error, which
    /// is returned) none.
    pub fn apply(&mut self, changes: &[SetElements]) -> Result<(), NftNetlinkError> {
        let messages_count: usize = changes
            .iter()
            .map(|c| {
                c.delete.len().div_ceil(ELEMENTS_PER_MESSAGE)
                    + c.add.len().div_ceil(ELEMENTS_PER_MESSAGE)
            })
            .sum();
        if messages_count == 0 {
            return Ok(());
        }
        let seq = self.next_seq(messages_count);
        let (bytes, acked) = encode_batch(seq, changes);
        let what = |s: u32| -> String {
            // Which message a sequence number was: deletions, then additions.
            let mut k = seq + 1;
            for (verb, pick) in [("deleting", 0), ("adding", 1)] {
                for c in changes {
                    let n = if pick == 0 { &c.delete } else { &c.add }
                        .len()
                        .div_ceil(ELEMENTS_PER_MESSAGE);
                    if s >= k && s < k + n as u32 {
                        return format!("{verb} elements of set {}", c.set);
                    }
                    k += n as u32;
                }
            }
            "the batch".to_string()
        };
        self.transact(&bytes, acked, seq..=seq + messages_count as u32 + 1, what)
    }

    /// Applies a batch of chain rebuilds and element changes (see
    /// [`encode_chain_changes`]): all of it, or (on any error, which is
    /// returned) none.
    pub fn apply_chains(&mut self, batch: &ChainBatch) -> Result<(), NftNetlinkError> {
        let count = batch.messages();
        if count == 0 {
            return Ok(());
        }
        let seq = self.next_seq(count);
        let (bytes, acked, labels) = batch.encode(seq);
        let what = |s: u32| -> String {
            labels
                .iter()
                .rev()
                .find(|(from, _)| *from <= s)
                .map_or_else(|| "the batch".to_string(), |(_, label)| label.clone())
        };
        self.transact(&bytes, acked, seq..=seq + count as u32 + 1, what)
    }

    /// Sends one batch and waits for the acknowledgement of each message
    /// in `acked`; the first refusal is returned, described by `what`.
    fn transact(
        &mut self,
        bytes: &[u8],
        acked: Vec<u32>,
        range: std::ops::RangeInclusive<u32>,
        what: impl Fn(u32) -> String,
    ) -> Result<(), NftNetlinkError> {
        self.send(bytes)?;
        let mut pending: std::collections::BTreeSet<u32> = acked.into_iter().collect();
        let mut failure: Option<NftNetlinkError> = None;
        let mut buf = vec![0u8; 1 << 16];
        while !pending.is_empty() {
            // After a failure the kernel may stop early: take only what is
            // queued already.
            let Some(n) = self.recv(&mut buf, failure.is_none())? else {
                break;
            };
            for (kind, s, payload) in messages(&buf[..n]) {
                if !range.contains(&s) {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    pending.remove(&s);
                    let code = error_code(payload);
                    if code != 0 && failure.is_none() {
                        failure = Some(NftNetlinkError::Refused {
                            what: what(s),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads every element of `set` (a dump: one request, the kernel's
    /// answers until `NLMSG_DONE`): what a rebuilt chain's counts are
    /// carried from, without an nft process per set.
    pub fn dump(&mut self, set: &str) -> Result<Vec<ReadElement>, NftNetlinkError> {
        let seq = self.next_seq(0);
        let mut m = Message::new(
            msg_type(NFT_MSG_GETSETELEM),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            NFPROTO_INET,
            0,
        );
        m.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        let mut bytes = Vec::new();
        m.finish(&mut bytes);
        self.send(&bytes)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Some(n) = self.recv(&mut buf, true)? {
            for (kind, s, payload) in messages(&buf[..n]) {
                if s != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = error_code(payload);
                        if code == -libc::ENOENT {
                            return Ok(out);
                        }
                        return Err(NftNetlinkError::Refused {
                            what: format!("reading set {set}"),
                            source: std::io::Error::from_raw_os_error(-code),
                        });
                    }
                    k if k == msg_type(NFT_MSG_NEWSETELEM) && payload.len() >= 4 => {
                        out.extend(read_elements(&payload[4..]));
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Reads single elements of `set` back (their key, comment and
    /// counter); an element that is not there is left out.
    pub fn get(
        &mut self,
        set: &str,
        elements: &[Element],
    ) -> Result<Vec<ReadElement>, NftNetlinkError> {
        if elements.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_seq(elements.len());
        let mut bytes = Vec::new();
        for (k, e) in elements.iter().enumerate() {
            element_list(
                NFT_MSG_GETSETELEM,
                NLM_F_REQUEST | NLM_F_ACK,
                first + k as u32,
                set,
                std::slice::from_ref(e),
            )
            .finish(&mut bytes);
        }
        self.send(&bytes)?;
        let last = first + elements.len() as u32 - 1;
        let mut pending: std::collections::BTreeSet<u32> = (first..=last).collect();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while !pending.is_empty() {
            let Some(n) = self.recv(&mut buf, true)? else {
                break;
            };
            for (kind, s, payload) in messages(&buf[..n]) {
                if s < first || s > last {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        pending.remove(&s);
                        let code = error_code(payload);
                        if code != 0 && code != -libc::ENOENT {
                            return Err(NftNetlinkError::Refused {
                                what: format!("reading elements of set {set}"),
                                source: std::io::Error::from_raw_os_error(-code),
                            });
                        }
                    }
                    NLMSG_DONE => {
                        pending.remove(&s);
                    }
                    k if k == msg_type(NFT_MSG_NEWSETELEM) && payload.len() >= 4 => {
                        out.extend(read_elements(&payload[4..]));
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}

impl Element {
    /// The encoded key (for matching elements read back).
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: &str = "type ipv4_addr . inet_proto . inet_service; flags interval; counter;";

    #[test]
    fn set_types_are_read_from_the_planners_specs() {
        let t = SetType::parse(PORTS).unwrap();
        assert_eq!(t.key, [Field::Ipv4, Field::Byte, Field::Service]);
        assert!(t.interval && t.data.is_empty());
        let m = SetType::parse(
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
        )
        .unwrap();
        assert_eq!(m.data, [Field::Ipv4, Field::Service]);
        assert!(!m.interval);
        assert!(SetType::parse("type ipv4_addr; flags interval;").is_err());
        let v = SetType::parse("type ifname : verdict;").unwrap();
        assert!(v.verdicts && v.data.is_empty());
        assert!(SetType::parse("type ifname : queue;").is_err());
    }

    #[test]
    fn a_concatenated_interval_element_has_padded_key_and_key_end() {
        let t = SetType::parse(PORTS).unwrap();
        let e = Element::parse(
            &t,
            r#"10.1.0.0/16 . 6 . 80-90 counter packets 3 bytes 384 comment "7 web""#,
            true,
        )
        .unwrap();
        assert_eq!(e.key, [10, 1, 0, 0, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(
            e.key_end.unwrap(),
            [10, 1, 255, 255, 6, 0, 0, 0, 0, 90, 0, 0]
        );
        assert_eq!(e.counter, Some((3, 384)));
        assert_eq!(e.comment.as_deref(), Some("7 web"));
        let plain = Element::parse(&t, r#"10.0.0.1 . 17 . 53 comment "8""#, true).unwrap();
        assert_eq!(
            plain.counter,
            Some((0, 0)),
            "a counting set's element counts"
        );
        let range = Element::parse(&t, "10.0.0.1-10.0.0.9 . 17 . 53", false).unwrap();
        assert_eq!(range.key_end.unwrap()[..4], [10, 0, 0, 9]);
        assert_eq!(range.counter, None);
    }

    #[test]
    fn map_elements_carry_their_data_and_marks_are_host_order() {
        let pf = SetType::parse(
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
        )
        .unwrap();
        let e = Element::parse(&pf, "203.0.113.11 . 6 . 10000 : 10.1.1.10 . 80", false).unwrap();
        assert_eq!(e.key, [203, 0, 113, 11, 6, 0, 0, 0, 0x27, 0x10, 0, 0]);
        assert_eq!(e.key_end, None);
        assert_eq!(e.data.unwrap(), [10, 1, 1, 10, 0, 80, 0, 0]);
        let out = SetType::parse("type ifname . ipv4_addr : ipv4_addr;").unwrap();
        let e = Element::parse(&out, r#""eth1" . 10.1.2.6 : 203.0.113.12"#, false).unwrap();
        assert_eq!(&e.key[..5], b"eth1\0");
        assert_eq!(e.key.len(), 20);
        assert_eq!(&e.key[16..], [10, 1, 2, 6]);
        assert!(Element::parse(&out, r#"eth1 . 10.1.2.6 : 203.0.113.12"#, false).is_err());
        let mark = SetType::parse("type ipv4_addr : mark;").unwrap();
        let e = Element::parse(&mark, "10.1.1.5 : 0x65", false).unwrap();
        assert_eq!(e.key, [10, 1, 1, 5]);
        assert_eq!(e.data.unwrap(), 0x65u32.to_ne_bytes());
    }

    #[test]
    fn bad_elements_are_refused() {
        let t = SetType::parse(PORTS).unwrap();
        for bad in [
            "10.0.0.1 . 6",
            "10.0.0.1 . 600 . 80",
            "10.0.0.1 . 6 . 70000",
            "10.0.0.1/33 . 6 . 80",
            "10.0.0.1 . 6 . 80 : 10.0.0.2",
            r#"10.0.0.1 . 6 . 80 comment "a"b""#,
        ] {
            assert!(Element::parse(&t, bad, true).is_err(), "{bad}");
        }
        let hash = SetType::parse("type ipv4_addr : ipv4_addr;").unwrap();
        assert!(Element::parse(&hash, "10.0.0.0/24 : 10.0.0.1", false).is_err());
    }

    #[test]
    fn a_batch_is_begin_deletions_additions_end_with_acks_asked() {
        let t = SetType::parse(PORTS).unwrap();
        let e = Element::parse(&t, r#"10.0.0.1 . 6 . 80 comment "1 a""#, true).unwrap();
        let (bytes, acked) = encode_batch(
            100,
            &[SetElements {
                set: "s".into(),
                delete: vec![e.clone()],
                add: vec![e],
            }],
        );
        let seen: Vec<(u16, u32)> = messages(&bytes).map(|(k, s, _)| (k, s)).collect();
        assert_eq!(
            seen,
            [
                (NFNL_MSG_BATCH_BEGIN, 100),
                (msg_type(NFT_MSG_DELSETELEM), 101),
                (msg_type(NFT_MSG_NEWSETELEM), 102),
                (NFNL_MSG_BATCH_END, 103),
            ]
        );
        assert_eq!(acked, [101, 102]);
        // The addition carries the counter and the comment; the deletion
        // the key only.
        let (_, _, del) = messages(&bytes).nth(1).unwrap();
        let (_, _, add) = messages(&bytes).nth(2).unwrap();
        let del_elems = nested(&del[4..], NFTA_SET_ELEM_LIST_ELEMENTS).unwrap();
        let del_elem = nested(del_elems, NFTA_LIST_ELEM).unwrap();
        assert!(nested(del_elem, NFTA_SET_ELEM_EXPRESSIONS).is_none());
        assert!(nested(del_elem, NFTA_SET_ELEM_KEY_END).is_some());
        let read = read_elements(&add[4..]);
        assert_eq!(
            read,
            [ReadElement {
                key: vec![10, 0, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0],
                comment: Some("1 a".into()),
                counter: Some((0, 0)),
            }]
        );
        assert_eq!(
            nested(&add[4..], NFTA_SET_ELEM_LIST_TABLE).unwrap(),
            b"vpc\0"
        );
    }
}

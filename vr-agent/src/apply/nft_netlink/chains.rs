//! ACL chains rebuilt over netlink: a tier's list replaced (or any change
//! that re-plans an ACL chain) in one nf_tables transaction without an nft
//! process, which would parse a script of thousands of elements, read the
//! table back and compile every rule.
//!
//! The batch flushes the chain (`DELRULE` naming the chain only), deletes
//! its old sets, creates its new sets (`NEWSET`, then `NEWSETELEM` with the
//! elements), adds its new rules (`NEWRULE`) and makes the element changes
//! of other chains, between one `BATCH_BEGIN` and `BATCH_END`: the kernel
//! applies all of it or, when any message fails, none, and the old rules
//! stay. A set created in the batch can have the name of one deleted before
//! it: nf_tables looks names up in the next generation, where the old set
//! is gone; the new set's batch id is sent too.
//!
//! Rules are expression lists. Only the shapes the ACL chains use are
//! encoded (see [`crate::plan::nft`]'s `acl` module), each as `nft` 1.0
//! compiles it (`nft --debug=netlink` prints them):
//!
//! ```text
//! [ip|ip6 saddr|daddr PREFIX] <key> @set accept|drop|return
//! ip|ip6 saddr|daddr . meta l4proto vmap @map
//! accept | drop | return
//! ```
//!
//! with `<key>` one of `ip saddr . meta l4proto . th dport`, `ip saddr .
//! meta l4proto`, `ip saddr . icmp type . icmp code` and their IPv6 and
//! `daddr` forms, and the sets those keys look up and the maps of address
//! and protocol to `jump <chain>` that dispatch a sharded lookup; any other
//! rule or set makes the caller take nft. A chain's subchains are created
//! before its sets (a map's elements go to them) and deleted after its
//! sets. The
//! kernel test `nft_kernel::a_chain_rebuilt_over_netlink_lists_as_a_full_load`
//! compares nft's listing of a table changed this way with a full load.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{
    Element, Message, NFPROTO_INET, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFTA_DATA_VALUE,
    NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_LIST_ELEM, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
    NftNetlinkError, SetElements, SetType, encode_err, msg_type,
};
use crate::plan::nft::{ChainChanges, TABLE};

const NFNL_SUBSYS_NFTABLES: u16 = super::NFNL_SUBSYS_NFTABLES;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
/// Rules are appended in the order given.
const NLM_F_APPEND: u16 = 0x800;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_EXPR: u16 = 17;
const NFTA_SET_DESC_CONCAT: u16 = 2;
const NFTA_SET_FIELD_LEN: u16 = 1;
/// `flags interval` on a concatenation: `NFT_SET_INTERVAL | NFT_SET_CONCAT`.
const SET_FLAGS_CONCAT_INTERVAL: u32 = 0x4 | 0x80;
/// `NFT_SET_MAP`: the set is a map.
const SET_FLAG_MAP: u32 = 0x8;
/// `NFT_DATA_VERDICT`: a map's data are verdicts.
const DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's datatypes are combined into a concatenation's type 6 bits each.
const TYPE_BITS: u32 = 6;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_BYTEORDER_SREG: u16 = 1;
const NFTA_BYTEORDER_DREG: u16 = 2;
const NFTA_BYTEORDER_OP: u16 = 3;
const NFTA_BYTEORDER_LEN: u16 = 4;
const NFTA_BYTEORDER_SIZE: u16 = 5;
const NFT_BYTEORDER_HTON: u32 = 1;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFT_REG_VERDICT: u32 = 0;
/// The 16-byte register 1, where nft puts a concatenation's first field
/// (and a guard's address).
const REG_1: u32 = 1;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_RETURN: i32 = -5;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

/// One expression of a rule, as nf_tables takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `meta load <key> => reg <dreg>`.
    Meta { key: u32, dreg: u32 },
    /// `cmp eq reg <sreg> <data>`.
    Cmp { sreg: u32, data: Vec<u8> },
    /// `payload load <len>b @ <base> header + <offset> => reg <dreg>`.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `bitwise reg <reg> = (reg <reg> & <mask>) ^ 0`.
    Mask { reg: u32, mask: Vec<u8> },
    /// `byteorder reg <reg> = hton(reg <reg>, 2, 1)`: nft widens the one
    /// byte of `meta l4proto` so that it compares as a concatenation's
    /// field.
    Hton { reg: u32 },
    /// `lookup reg 1 set <set>`.
    Lookup { set: String },
    /// `lookup reg 1 set <map> dreg 0`: a verdict map's lookup.
    Vmap { set: String },
    /// `immediate reg 0 <verdict>`.
    Verdict(i32),
}

/// An address match as the ACL chains write it: `ip saddr`, `ip6 daddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addr {
    v6: bool,
    source: bool,
}

impl Addr {
    fn parse(family: &str, field: &str) -> Option<Addr> {
        let v6 = match family {
            "ip" => false,
            "ip6" => true,
            _ => return None,
        };
        let source = match field {
            "saddr" => true,
            "daddr" => false,
            _ => return None,
        };
        Some(Addr { v6, source })
    }

    fn len(self) -> u32 {
        if self.v6 { 16 } else { 4 }
    }

    fn offset(self) -> u32 {
        match (self.v6, self.source) {
            (false, true) => 12,
            (false, false) => 16,
            (true, true) => 8,
            (true, false) => 24,
        }
    }

    fn load(self, len: u32) -> Expr {
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: self.offset(),
            len,
            dreg: REG_1,
        }
    }

    /// The address (or prefix `a/len`) `text`, its bytes and prefix length.
    fn value(self, text: &str) -> Option<(Vec<u8>, u32)> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, l.parse::<u32>().ok()?),
            None => (text, self.len() * 8),
        };
        let bytes = if self.v6 {
            addr.parse::<Ipv6Addr>().ok()?.octets().to_vec()
        } else {
            addr.parse::<Ipv4Addr>().ok()?.octets().to_vec()
        };
        (1..=self.len() * 8).contains(&len).then_some((bytes, len))
    }
}

/// The match on a prefix before a sharded set's lookup, as nft compiles
/// it: a prefix of whole bytes loads and compares those bytes only; any
/// other loads the whole address and masks it.
fn guard(addr: Addr, text: &str) -> Option<Vec<Expr>> {
    let (bytes, len) = addr.value(text)?;
    if len % 8 == 0 {
        let n = len / 8;
        return Some(vec![
            addr.load(n),
            Expr::Cmp {
                sreg: REG_1,
                data: bytes[..n as usize].to_vec(),
            },
        ]);
    }
    let mask: Vec<u8> = (0..addr.len())
        .map(|k| {
            let bits = len.saturating_sub(k * 8).min(8);
            (0xffu16 << (8 - bits)) as u8
        })
        .collect();
    let masked = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
    Some(vec![
        addr.load(addr.len()),
        Expr::Mask {
            reg: REG_1,
            mask: mask.clone(),
        },
        Expr::Cmp {
            sreg: REG_1,
            data: masked,
        },
    ])
}

/// The expressions of a lookup key `addr . <rest>`: the address in
/// register 1 and the other fields in the 4-byte registers nft gives them
/// (after an IPv4 address 9 and 10, after an IPv6 address 2 and 13), with
/// the protocol dependency an ICMP key needs first.
fn key(addr: Addr, rest: &str) -> Option<(Vec<Expr>, Vec<Expr>)> {
    let (second, third) = if addr.v6 { (2, 13) } else { (9, 10) };
    let transport = |offset, len, dreg| Expr::Payload {
        base: NFT_PAYLOAD_TRANSPORT_HEADER,
        offset,
        len,
        dreg,
    };
    let l4proto = |dreg| Expr::Meta {
        key: NFT_META_L4PROTO,
        dreg,
    };
    let address = addr.load(addr.len());
    Some(match (addr.v6, rest) {
        (_, "meta l4proto . th dport") => (
            Vec::new(),
            vec![
                address,
                l4proto(second),
                Expr::Hton { reg: second },
                transport(2, 2, third),
            ],
        ),
        (_, "meta l4proto") => (
            Vec::new(),
            vec![address, l4proto(second), Expr::Hton { reg: second }],
        ),
        (false, "icmp type . icmp code") | (true, "icmpv6 type . icmpv6 code") => {
            let proto = if addr.v6 {
                IPPROTO_ICMPV6
            } else {
                IPPROTO_ICMP
            };
            (
                vec![
                    l4proto(REG_1),
                    Expr::Cmp {
                        sreg: REG_1,
                        data: vec![proto],
                    },
                ],
                vec![address, transport(0, 1, second), transport(1, 1, third)],
            )
        }
        _ => return None,
    })
}

fn verdict(word: &str) -> Option<i32> {
    Some(match word {
        "accept" => NF_ACCEPT,
        "drop" => NF_DROP,
        "return" => NFT_RETURN,
        _ => return None,
    })
}

/// The expressions of an ACL chain's rule, from its text in the plan; an
/// error for a rule of another shape.
fn rule_exprs(text: &str) -> Result<Vec<Expr>, NftNetlinkError> {
    let fail = || encode_err(text, "not a rule shape of an ACL chain");
    let words: Vec<&str> = text.split(' ').collect();
    let (last, rest) = words.split_last().ok_or_else(fail)?;
    // `ip saddr . meta l4proto vmap @map`: the map's verdict decides.
    if let [family, field, ".", "meta", "l4proto", "vmap"] = rest {
        let map = last
            .strip_prefix('@')
            .filter(|s| !s.is_empty())
            .ok_or_else(fail)?;
        let addr = Addr::parse(family, field).ok_or_else(fail)?;
        let (_, loads) = key(addr, "meta l4proto").ok_or_else(fail)?;
        let mut out = nfproto(addr).to_vec();
        out.extend(loads);
        out.push(Expr::Vmap {
            set: map.to_string(),
        });
        return Ok(out);
    }
    let code = verdict(last).ok_or_else(fail)?;
    if rest.is_empty() {
        return Ok(vec![Expr::Verdict(code)]);
    }
    let (set, rest) = rest.split_last().ok_or_else(fail)?;
    let set = set
        .strip_prefix('@')
        .filter(|s| !s.is_empty())
        .ok_or_else(fail)?;
    // `ip saddr <prefix> ip saddr . …` or `ip saddr . …`.
    let (guarded, rest) = match rest {
        [family, field, prefix, rest @ ..] if *prefix != "." => {
            (Some((*family, *field, *prefix)), rest)
        }
        _ => (None, rest),
    };
    let [family, field, ".", rest @ ..] = rest else {
        return Err(fail());
    };
    let addr = Addr::parse(family, field).ok_or_else(fail)?;
    let (dependency, loads) = key(addr, &rest.join(" ")).ok_or_else(fail)?;
    let mut out = nfproto(addr).to_vec();
    if let Some((family, field, prefix)) = guarded {
        if Addr::parse(family, field) != Some(addr) {
            return Err(fail());
        }
        out.extend(guard(addr, prefix).ok_or_else(fail)?);
    }
    out.extend(dependency);
    out.extend(loads);
    out.push(Expr::Lookup {
        set: set.to_string(),
    });
    out.push(Expr::Verdict(code));
    Ok(out)
}

/// The family check nft puts before a match on an address of `addr`'s
/// family in an `inet` table.
fn nfproto(addr: Addr) -> [Expr; 2] {
    [
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: REG_1,
        },
        Expr::Cmp {
            sreg: REG_1,
            data: vec![if addr.v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }],
        },
    ]
}

/// A chain name as the planner writes them (`ACL_INBOUND_eth2_l0_…`):
/// letters, digits and `_`, at most nf_tables' 255 bytes.
fn chain_name(text: &str) -> Option<String> {
    (!text.is_empty()
        && text.len() < 256
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then(|| text.to_string())
}

/// nft's datatype number and length of a field of an ACL set's key.
fn datatype(name: &str) -> Option<(u32, u32)> {
    Some(match name {
        "ipv4_addr" => (7, 4),
        "ipv6_addr" => (8, 16),
        "inet_proto" => (12, 1),
        "inet_service" => (13, 2),
        "icmp_type" => (14, 1),
        "icmp_code" => (32, 1),
        "icmpv6_type" => (29, 1),
        "icmpv6_code" => (33, 1),
        _ => return None,
    })
}

/// A set to create: an interval set of a concatenation, counting its
/// elements when the spec says `counter;`, or a map of such intervals to
/// verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewSet {
    name: String,
    /// Each field's datatype and length.
    fields: Vec<(u32, u32)>,
    counting: bool,
    /// A verdict map (`type … : verdict`).
    verdicts: bool,
    elements: Vec<Element>,
}

impl NewSet {
    /// The set `name` of `spec` (`type a . b . c; flags interval;
    /// counter;` or `type a . b : verdict; flags interval;`, the only
    /// forms the ACL chains declare).
    fn parse(name: &str, spec: &str) -> Result<NewSet, NftNetlinkError> {
        let fail = || encode_err(spec, "not an ACL set's declaration");
        let mut fields = None;
        let (mut interval, mut counting, mut verdicts) = (false, false, false);
        for clause in spec.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            match clause {
                "flags interval" => interval = true,
                "counter" => counting = true,
                _ => {
                    let mut types = clause.strip_prefix("type ").ok_or_else(fail)?;
                    if let Some(key) = types.strip_suffix(" : verdict") {
                        (types, verdicts) = (key, true);
                    }
                    let parsed: Option<Vec<(u32, u32)>> =
                        types.split(" . ").map(|t| datatype(t.trim())).collect();
                    fields = Some(parsed.ok_or_else(fail)?);
                }
            }
        }
        let fields = fields
            .filter(|f| f.len() >= 2 && interval)
            .ok_or_else(fail)?;
        if verdicts && counting {
            return Err(fail());
        }
        Ok(NewSet {
            name: name.to_string(),
            fields,
            counting,
            verdicts,
            elements: Vec::new(),
        })
    }

    /// The concatenation's type: the fields' types, 6 bits each.
    fn key_type(&self) -> u32 {
        self.fields
            .iter()
            .fold(0, |ty, (field, _)| (ty << TYPE_BITS) | field)
    }

    /// The key's length: each field in its own 4-byte registers.
    fn key_len(&self) -> u32 {
        self.fields.iter().map(|(_, len)| len.div_ceil(4) * 4).sum()
    }

    fn message(&self, seq: u32, id: u32) -> Message {
        let mut m = Message::new(
            msg_type(NFT_MSG_NEWSET),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            seq,
            NFPROTO_INET,
            0,
        );
        m.attr_str(NFTA_SET_TABLE, TABLE);
        m.attr_str(NFTA_SET_NAME, &self.name);
        let map = if self.verdicts { SET_FLAG_MAP } else { 0 };
        m.attr(
            NFTA_SET_FLAGS,
            &(SET_FLAGS_CONCAT_INTERVAL | map).to_be_bytes(),
        );
        m.attr(NFTA_SET_KEY_TYPE, &self.key_type().to_be_bytes());
        m.attr(NFTA_SET_KEY_LEN, &self.key_len().to_be_bytes());
        if self.verdicts {
            // nft sends a verdict's length as 0: the kernel knows it.
            m.attr(NFTA_SET_DATA_TYPE, &DATA_VERDICT.to_be_bytes());
            m.attr(NFTA_SET_DATA_LEN, &0u32.to_be_bytes());
        }
        m.attr(NFTA_SET_ID, &id.to_be_bytes());
        m.open(NFTA_SET_DESC);
        m.open(NFTA_SET_DESC_CONCAT);
        for (_, len) in &self.fields {
            m.open(NFTA_LIST_ELEM);
            m.attr(NFTA_SET_FIELD_LEN, &len.to_be_bytes());
            m.close();
        }
        m.close();
        m.close();
        m.attr(NFTA_SET_USERDATA, &set_userdata(self.verdicts));
        if self.counting {
            m.open(NFTA_SET_EXPR);
            m.attr_str(NFTA_EXPR_NAME, "counter");
            m.open(NFTA_EXPR_DATA);
            m.close();
            m.close();
        }
        m
    }
}

/// The user data nft 1.0 stores with a set declared by `type` with a
/// concatenation (what it reads back when listing): the key's byte order
/// (none for a concatenation) and, as its `typeof`, an empty concatenation,
/// which nft lists by the key's type. libnftnl's TLVs (type, length,
/// value; numbers in host order): `KEYBYTEORDER` (0) and `KEY_TYPEOF` (3)
/// holding `TYPEOF_EXPR` (0) = `EXPR_CONCAT` (13) and an empty
/// `TYPEOF_DATA` (1). A verdict map adds its data's byte order
/// (`DATABYTEORDER`, 1) after the key's and, last, that its data are not
/// intervals (`DATA_INTERVAL`, 6).
fn set_userdata(verdicts: bool) -> Vec<u8> {
    const KEYBYTEORDER: u8 = 0;
    const DATABYTEORDER: u8 = 1;
    const KEY_TYPEOF: u8 = 3;
    const DATA_INTERVAL: u8 = 6;
    const TYPEOF_EXPR: u8 = 0;
    const TYPEOF_DATA: u8 = 1;
    const EXPR_CONCAT: u32 = 13;
    let mut out = vec![KEYBYTEORDER, 4];
    out.extend_from_slice(&0u32.to_ne_bytes());
    if verdicts {
        out.extend_from_slice(&[DATABYTEORDER, 4]);
        out.extend_from_slice(&0u32.to_ne_bytes());
    }
    out.extend_from_slice(&[KEY_TYPEOF, 8, TYPEOF_EXPR, 4]);
    out.extend_from_slice(&EXPR_CONCAT.to_ne_bytes());
    out.extend_from_slice(&[TYPEOF_DATA, 0]);
    if verdicts {
        out.extend_from_slice(&[DATA_INTERVAL, 4]);
        out.extend_from_slice(&0u32.to_ne_bytes());
    }
    out
}

fn put_data(m: &mut Message, kind: u16, value: &[u8]) {
    m.open(kind);
    m.attr(NFTA_DATA_VALUE, value);
    m.close();
}

fn put_expr(m: &mut Message, e: &Expr, set_ids: &std::collections::HashMap<&str, u32>) {
    let be = |v: u32| v.to_be_bytes();
    m.open(NFTA_LIST_ELEM);
    let name = match e {
        Expr::Meta { .. } => "meta",
        Expr::Cmp { .. } => "cmp",
        Expr::Payload { .. } => "payload",
        Expr::Mask { .. } => "bitwise",
        Expr::Hton { .. } => "byteorder",
        Expr::Lookup { .. } | Expr::Vmap { .. } => "lookup",
        Expr::Verdict(_) => "immediate",
    };
    m.attr_str(NFTA_EXPR_NAME, name);
    m.open(NFTA_EXPR_DATA);
    match e {
        Expr::Meta { key, dreg } => {
            m.attr(NFTA_META_KEY, &be(*key));
            m.attr(NFTA_META_DREG, &be(*dreg));
        }
        Expr::Cmp { sreg, data } => {
            m.attr(NFTA_CMP_SREG, &be(*sreg));
            m.attr(NFTA_CMP_OP, &be(NFT_CMP_EQ));
            put_data(m, NFTA_CMP_DATA, data);
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            m.attr(NFTA_PAYLOAD_DREG, &be(*dreg));
            m.attr(NFTA_PAYLOAD_BASE, &be(*base));
            m.attr(NFTA_PAYLOAD_OFFSET, &be(*offset));
            m.attr(NFTA_PAYLOAD_LEN, &be(*len));
        }
        Expr::Mask { reg, mask } => {
            m.attr(NFTA_BITWISE_SREG, &be(*reg));
            m.attr(NFTA_BITWISE_DREG, &be(*reg));
            m.attr(NFTA_BITWISE_LEN, &be(mask.len() as u32));
            put_data(m, NFTA_BITWISE_MASK, mask);
            put_data(m, NFTA_BITWISE_XOR, &vec![0; mask.len()]);
        }
        Expr::Hton { reg } => {
            m.attr(NFTA_BYTEORDER_SREG, &be(*reg));
            m.attr(NFTA_BYTEORDER_DREG, &be(*reg));
            m.attr(NFTA_BYTEORDER_OP, &be(NFT_BYTEORDER_HTON));
            m.attr(NFTA_BYTEORDER_LEN, &be(1));
            m.attr(NFTA_BYTEORDER_SIZE, &be(2));
        }
        Expr::Lookup { set } | Expr::Vmap { set } => {
            m.attr(NFTA_LOOKUP_SREG, &be(REG_1));
            m.attr_str(NFTA_LOOKUP_SET, set);
            if let Some(id) = set_ids.get(set.as_str()) {
                m.attr(NFTA_LOOKUP_SET_ID, &be(*id));
            }
            if matches!(e, Expr::Vmap { .. }) {
                m.attr(NFTA_LOOKUP_DREG, &be(NFT_REG_VERDICT));
            }
        }
        Expr::Verdict(code) => {
            m.attr(NFTA_IMMEDIATE_DREG, &be(NFT_REG_VERDICT));
            m.open(NFTA_IMMEDIATE_DATA);
            m.open(NFTA_DATA_VERDICT);
            m.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
            m.close();
            m.close();
        }
    }
    m.close();
    m.close();
}

/// One chain of a [`ChainBatch`], encoded but for its sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rebuilt {
    chain: String,
    old_sets: Vec<String>,
    /// Subchains before: all flushed, those not kept deleted.
    old_subchains: Vec<String>,
    sets: Vec<NewSet>,
    rules: Vec<Vec<Expr>>,
    /// Subchains after, with their rules (those not there before are
    /// created).
    subchains: Vec<(String, Vec<Vec<Expr>>)>,
}

impl Rebuilt {
    fn kept(names: &[String], name: &str) -> bool {
        names.iter().any(|n| n == name)
    }

    /// The subchains that go.
    fn gone(&self) -> impl Iterator<Item = &String> {
        let new: Vec<&String> = self.subchains.iter().map(|(n, _)| n).collect();
        self.old_subchains.iter().filter(move |o| !new.contains(o))
    }

    /// The subchains that come.
    fn created(&self) -> impl Iterator<Item = &String> {
        self.subchains
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !Self::kept(&self.old_subchains, n))
    }
}

/// Chain rebuilds and element changes checked and encoded, ready to be
/// numbered and sent as one batch ([`super::NftNetlink::apply_chains`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBatch {
    rebuilt: Vec<Rebuilt>,
    elements: Vec<SetElements>,
}

/// The planner's chain changes, encoded; an [`NftNetlinkError::Encode`]
/// when a rule, set or element is of a shape this module does not encode
/// (the change then takes the nft path).
pub fn encode_chain_changes(changes: &ChainChanges<'_>) -> Result<ChainBatch, NftNetlinkError> {
    let mut rebuilt = Vec::new();
    for chain in &changes.rebuilt {
        let mut sets = Vec::new();
        for (set, carried) in &chain.sets {
            let mut new = NewSet::parse(&set.name, &set.spec)?;
            if (set.kind == "map") != new.verdicts {
                return Err(encode_err(&set.name, "a map of other data"));
            }
            let ty = SetType::parse(&set.spec)?;
            new.elements = set
                .elements
                .iter()
                // Elements without a carried count get the set's counter
                // from the kernel, as nft's elements do.
                .map(|e| Element::parse(&ty, e, false))
                .collect::<Result<_, _>>()?;
            for (k, counts) in carried {
                if let Some(e) = new.elements.get_mut(*k) {
                    e.counter = Some(*counts);
                }
            }
            sets.push(new);
        }
        let rules = |rules: &[String]| -> Result<Vec<Vec<Expr>>, NftNetlinkError> {
            rules.iter().map(|r| rule_exprs(r)).collect()
        };
        rebuilt.push(Rebuilt {
            chain: chain.chain.to_string(),
            old_sets: chain.old_sets.iter().map(|s| s.to_string()).collect(),
            old_subchains: chain.old_subchains.iter().map(|s| s.to_string()).collect(),
            sets,
            rules: rules(chain.rules)?,
            subchains: chain
                .subchains
                .iter()
                .map(|sub| {
                    let name = chain_name(&sub.name)
                        .ok_or_else(|| encode_err(&sub.name, "not a chain name"))?;
                    Ok((name, rules(&sub.rules)?))
                })
                .collect::<Result<_, NftNetlinkError>>()?,
        });
    }
    Ok(ChainBatch {
        rebuilt,
        elements: super::encode_deltas(&changes.elements)?,
    })
}

impl ChainBatch {
    /// How many messages the batch holds between its begin and end.
    pub fn messages(&self) -> usize {
        let per = super::ELEMENTS_PER_MESSAGE;
        let chains: usize = self
            .rebuilt
            .iter()
            .map(|c| {
                1 + c.old_subchains.len()
                    + c.old_sets.len()
                    + c.gone().count()
                    + c.created().count()
                    + c.rules.len()
                    + c.subchains.iter().map(|(_, r)| r.len()).sum::<usize>()
                    + c.sets
                        .iter()
                        .map(|s| 1 + s.elements.len().div_ceil(per))
                        .sum::<usize>()
            })
            .sum();
        let elements: usize = self
            .elements
            .iter()
            .map(|c| c.delete.len().div_ceil(per) + c.add.len().div_ceil(per))
            .sum();
        chains + elements
    }

    /// How many chains the batch rebuilds.
    pub fn chains(&self) -> usize {
        self.rebuilt.len()
    }

    /// How many set elements the batch creates or deletes.
    pub fn element_count(&self) -> usize {
        let created: usize = self
            .rebuilt
            .iter()
            .flat_map(|c| &c.sets)
            .map(|s| s.elements.len())
            .sum();
        created
            + self
                .elements
                .iter()
                .map(|c| c.delete.len() + c.add.len())
                .sum::<usize>()
    }

    /// The batch's bytes with sequence numbers from `seq` (begin), the
    /// numbers of the messages acknowledged, and from which number on each
    /// step is described in an error.
    pub fn encode(&self, seq: u32) -> (Vec<u8>, Vec<u32>, Vec<(u32, String)>) {
        let mut out = Vec::new();
        let mut acked = Vec::new();
        let mut labels = Vec::new();
        let mut next = seq;
        let control = |kind, seq| Message::new(kind, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES);
        control(super::NFNL_MSG_BATCH_BEGIN, next).finish(&mut out);
        next += 1;
        let mut push = |m: Message, out: &mut Vec<u8>, next: &mut u32| {
            m.finish(out);
            acked.push(*next);
            *next += 1;
        };
        let ack = NLM_F_REQUEST | NLM_F_ACK;
        let chain_message = |kind: u16, seq: u32, name: &str, flags: u16| {
            let mut m = Message::new(msg_type(kind), flags, seq, NFPROTO_INET, 0);
            m.attr_str(NFTA_CHAIN_TABLE, TABLE);
            m.attr_str(NFTA_CHAIN_NAME, name);
            m
        };
        // 1. The rebuilt chains and their subchains lose their rules, then
        //    the chains lose their sets and maps (whose elements go to
        //    subchains), then the subchains that go are deleted.
        for c in &self.rebuilt {
            labels.push((next, format!("flushing chain {}", c.chain)));
            for chain in std::iter::once(&c.chain).chain(&c.old_subchains) {
                let mut m = Message::new(msg_type(NFT_MSG_DELRULE), ack, next, NFPROTO_INET, 0);
                m.attr_str(NFTA_RULE_TABLE, TABLE);
                m.attr_str(NFTA_RULE_CHAIN, chain);
                push(m, &mut out, &mut next);
            }
            for set in &c.old_sets {
                labels.push((next, format!("deleting set {set}")));
                let mut m = Message::new(msg_type(NFT_MSG_DELSET), ack, next, NFPROTO_INET, 0);
                m.attr_str(NFTA_SET_TABLE, TABLE);
                m.attr_str(NFTA_SET_NAME, set);
                push(m, &mut out, &mut next);
            }
            for sub in c.gone() {
                labels.push((next, format!("deleting chain {sub}")));
                push(
                    chain_message(NFT_MSG_DELCHAIN, next, sub, ack),
                    &mut out,
                    &mut next,
                );
            }
        }
        // 2. Their new subchains, their new sets, each with its elements,
        //    then their rules.
        for c in &self.rebuilt {
            for sub in c.created() {
                labels.push((next, format!("creating chain {sub}")));
                push(
                    chain_message(NFT_MSG_NEWCHAIN, next, sub, ack | NLM_F_CREATE),
                    &mut out,
                    &mut next,
                );
            }
        }
        let mut set_ids = std::collections::HashMap::new();
        for (set, id) in self.rebuilt.iter().flat_map(|c| &c.sets).zip(1u32..) {
            labels.push((next, format!("creating set {}", set.name)));
            push(set.message(next, id), &mut out, &mut next);
            set_ids.insert(set.name.as_str(), id);
            for chunk in set.elements.chunks(super::ELEMENTS_PER_MESSAGE) {
                let m = super::element_list_of(
                    NFT_MSG_NEWSETELEM,
                    ack | NLM_F_CREATE,
                    next,
                    (&set.name, Some(id)),
                    chunk,
                );
                push(m, &mut out, &mut next);
            }
        }
        for c in &self.rebuilt {
            let chains = std::iter::once((&c.chain, &c.rules))
                .chain(c.subchains.iter().map(|(name, rules)| (name, rules)));
            for (chain, rules) in chains {
                labels.push((next, format!("adding the rules of chain {chain}")));
                for rule in rules {
                    let mut m = Message::new(
                        msg_type(NFT_MSG_NEWRULE),
                        ack | NLM_F_CREATE | NLM_F_APPEND,
                        next,
                        NFPROTO_INET,
                        0,
                    );
                    m.attr_str(NFTA_RULE_TABLE, TABLE);
                    m.attr_str(NFTA_RULE_CHAIN, chain);
                    m.open(NFTA_RULE_EXPRESSIONS);
                    for e in rule {
                        put_expr(&mut m, e, &set_ids);
                    }
                    m.close();
                    push(m, &mut out, &mut next);
                }
            }
        }
        // 3. The element changes of the other chains: deletions first.
        for (kind, flags) in [
            (NFT_MSG_DELSETELEM, ack),
            (NFT_MSG_NEWSETELEM, ack | NLM_F_CREATE),
        ] {
            for change in &self.elements {
                let (elements, verb) = if kind == NFT_MSG_DELSETELEM {
                    (&change.delete, "deleting")
                } else {
                    (&change.add, "adding")
                };
                if !elements.is_empty() {
                    labels.push((next, format!("{verb} elements of set {}", change.set)));
                }
                for chunk in elements.chunks(super::ELEMENTS_PER_MESSAGE) {
                    let m = super::element_list(kind, flags, next, &change.set, chunk);
                    push(m, &mut out, &mut next);
                }
            }
        }
        control(super::NFNL_MSG_BATCH_END, next).finish(&mut out);
        (out, acked, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(data: &[u8]) -> Expr {
        Expr::Cmp {
            sreg: REG_1,
            data: data.to_vec(),
        }
    }

    fn nfproto(family: u8) -> [Expr; 2] {
        [
            Expr::Meta {
                key: NFT_META_NFPROTO,
                dreg: REG_1,
            },
            cmp(&[family]),
        ]
    }

    fn net(offset: u32, len: u32) -> Expr {
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
            dreg: REG_1,
        }
    }

    fn th(offset: u32, len: u32, dreg: u32) -> Expr {
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset,
            len,
            dreg,
        }
    }

    fn l4proto(dreg: u32) -> Expr {
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg,
        }
    }

    fn lookup(set: &str) -> Expr {
        Expr::Lookup { set: set.into() }
    }

    // The expected lists below are what `nft --debug=netlink` (1.0.6)
    // printed for the same rules.

    #[test]
    fn a_guarded_ports_lookup_compiles_as_nft_compiles_it() {
        let got = rule_exprs(
            "ip saddr 10.100.0.0/16 ip saddr . meta l4proto . th dport @s_0a640000_16 accept",
        )
        .unwrap();
        let mut want = nfproto(NFPROTO_IPV4).to_vec();
        want.extend([
            net(12, 2),
            cmp(&[10, 100]),
            net(12, 4),
            l4proto(9),
            Expr::Hton { reg: 9 },
            th(2, 2, 10),
            lookup("s_0a640000_16"),
            Expr::Verdict(NF_ACCEPT),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn a_prefix_of_part_of_a_byte_is_masked_over_the_whole_address() {
        let got = rule_exprs("ip daddr 10.128.0.0/9 ip daddr . meta l4proto @s return").unwrap();
        let mut want = nfproto(NFPROTO_IPV4).to_vec();
        want.extend([
            net(16, 4),
            Expr::Mask {
                reg: REG_1,
                mask: vec![0xff, 0x80, 0, 0],
            },
            cmp(&[10, 128, 0, 0]),
            net(16, 4),
            l4proto(9),
            Expr::Hton { reg: 9 },
            lookup("s"),
            Expr::Verdict(NFT_RETURN),
        ]);
        assert_eq!(got, want);
        let v6 = rule_exprs(
            "ip6 daddr 2001:db8:8000::/33 ip6 daddr . meta l4proto . th dport @s6 accept",
        )
        .unwrap();
        assert_eq!(
            v6[3],
            Expr::Mask {
                reg: REG_1,
                mask: [[0xff; 4].as_slice(), &[0x80], &[0; 11]].concat(),
            }
        );
        assert_eq!(v6[2], net(24, 16));
        assert_eq!(v6[7], Expr::Hton { reg: 2 });
        assert_eq!(v6[8], th(2, 2, 13));
    }

    #[test]
    fn icmp_lookups_check_the_protocol_after_the_guard() {
        let got = rule_exprs("ip daddr 10.100.0.0/16 ip daddr . icmp type . icmp code @s4i return")
            .unwrap();
        let mut want = nfproto(NFPROTO_IPV4).to_vec();
        want.extend([
            net(16, 2),
            cmp(&[10, 100]),
            l4proto(REG_1),
            cmp(&[IPPROTO_ICMP]),
            net(16, 4),
            th(0, 1, 9),
            th(1, 1, 10),
            lookup("s4i"),
            Expr::Verdict(NFT_RETURN),
        ]);
        assert_eq!(got, want);
        let v6 = rule_exprs("ip6 saddr . icmpv6 type . icmpv6 code @s6i drop").unwrap();
        let mut want = nfproto(NFPROTO_IPV6).to_vec();
        want.extend([
            l4proto(REG_1),
            cmp(&[IPPROTO_ICMPV6]),
            net(8, 16),
            th(0, 1, 2),
            th(1, 1, 13),
            lookup("s6i"),
            Expr::Verdict(NF_DROP),
        ]);
        assert_eq!(v6, want);
    }

    #[test]
    fn a_host_guard_compares_the_whole_address_and_a_bare_verdict_is_one_expression() {
        let got = rule_exprs("ip saddr 10.1.2.3 ip saddr . meta l4proto @s drop").unwrap();
        assert_eq!(got[2..4], [net(12, 4), cmp(&[10, 1, 2, 3])]);
        assert_eq!(rule_exprs("drop").unwrap(), [Expr::Verdict(NF_DROP)]);
    }

    #[test]
    fn a_dispatch_map_lookup_compiles_as_nft_compiles_it() {
        let got = rule_exprs("ip saddr . meta l4proto vmap @m").unwrap();
        let mut want = nfproto(NFPROTO_IPV4).to_vec();
        want.extend([
            net(12, 4),
            l4proto(9),
            Expr::Hton { reg: 9 },
            Expr::Vmap { set: "m".into() },
        ]);
        assert_eq!(got, want);
        let v6 = rule_exprs("ip6 daddr . meta l4proto vmap @m6").unwrap();
        assert_eq!(
            v6[2..],
            [
                net(24, 16),
                l4proto(2),
                Expr::Hton { reg: 2 },
                Expr::Vmap { set: "m6".into() }
            ]
        );
        for bad in [
            "goto X",
            "ip saddr . meta l4proto vmap m",
            "ip saddr . th dport vmap @m",
            "jump X",
        ] {
            assert!(rule_exprs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dispatch_map_is_declared_and_filled_as_nft_does_it() {
        // nft 1.0.6 sent, for `map m { type ipv4_addr . inet_proto :
        // verdict; flags interval; }`: flags 0x8c, key type 0x1cc, key
        // length 8, data type 0xffffff00, data length 0, and these user
        // data; for the element `10.128.0.0/13 . 0-255 : jump C`: key
        // 0a800000 00000000, key end 0a87ffff ff000000, jump C (code -3).
        let spec = "type ipv4_addr . inet_proto : verdict; flags interval;";
        let set = NewSet::parse("m", spec).unwrap();
        assert!(set.verdicts && !set.counting);
        assert_eq!((set.key_type(), set.key_len()), (0x1cc, 8));
        if cfg!(target_endian = "little") {
            assert_eq!(
                set_userdata(true),
                [
                    0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0,
                    0, 0
                ],
                "the bytes nft sent"
            );
        }
        let ty = SetType::parse(spec).unwrap();
        let e = Element::parse(&ty, "10.128.0.0/13 . 0-255 : jump C", false).unwrap();
        assert_eq!(e.key, [10, 128, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            e.key_end.as_deref(),
            Some(&[10, 135, 255, 255, 255, 0, 0, 0][..])
        );
        assert_eq!((e.jump.as_deref(), e.data.as_ref()), (Some("C"), None));
        assert!(Element::parse(&ty, "10.128.0.0/13 . 0-255 : jump C-1", false).is_err());
        assert!(Element::parse(&ty, "10.128.0.0/13 . 0-255 : accept", false).is_err());
        assert!(Element::parse(&ty, "10.128.0.0/13 . 0-255", false).is_err());
        assert!(
            NewSet::parse(
                "m",
                "type ipv4_addr . inet_proto : verdict; flags interval; counter;"
            )
            .is_err()
        );
    }

    #[test]
    fn rules_of_other_shapes_are_refused() {
        for rule in [
            "ct state established accept",
            "iifname \"eth2\" jump ACL_INBOUND_eth2",
            "ip saddr . tcp dport @s accept",
            "ip saddr 10.0.0.0/8 ip6 saddr . meta l4proto @s accept",
            "ip saddr . meta l4proto @s continue",
            "ip saddr 0.0.0.0/0 ip saddr . meta l4proto @s accept",
            "ip6 saddr . icmp type . icmp code @s drop",
        ] {
            assert!(rule_exprs(rule).is_err(), "{rule}");
        }
    }

    #[test]
    fn acl_sets_are_declared_as_nft_declares_them() {
        // nft 1.0.6 sent these key types and lengths for the six shapes.
        for (spec, key_type, key_len, lens) in [
            (
                "ipv4_addr . inet_proto . inet_service",
                0x730d,
                12,
                &[4, 1, 2][..],
            ),
            ("ipv4_addr . inet_proto", 0x1cc, 8, &[4, 1]),
            ("ipv4_addr . icmp_type . icmp_code", 0x73a0, 12, &[4, 1, 1]),
            (
                "ipv6_addr . inet_proto . inet_service",
                0x830d,
                24,
                &[16, 1, 2],
            ),
            ("ipv6_addr . inet_proto", 0x20c, 20, &[16, 1]),
            (
                "ipv6_addr . icmpv6_type . icmpv6_code",
                0x8761,
                24,
                &[16, 1, 1],
            ),
        ] {
            let set =
                NewSet::parse("s", &format!("type {spec}; flags interval; counter;")).unwrap();
            assert_eq!(set.key_type(), key_type, "{spec}");
            assert_eq!(set.key_len(), key_len, "{spec}");
            let got: Vec<u32> = set.fields.iter().map(|f| f.1).collect();
            assert_eq!(got, lens, "{spec}");
            assert!(set.counting);
        }
        if cfg!(target_endian = "little") {
            assert_eq!(
                set_userdata(false),
                [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0],
                "the bytes nft sent"
            );
        }
        assert!(NewSet::parse("s", "type ipv4_addr; flags interval;").is_err());
        assert!(NewSet::parse("s", "type ipv4_addr . inet_proto;").is_err());
        assert!(NewSet::parse("s", "type ifname : verdict;").is_err());
    }
}

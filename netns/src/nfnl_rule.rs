//! nf_tables netlink encoding of the rules a container's published ports
//! need: its chains, `[ip|ip6 daddr A] tcp|udp dport P dnat to C:Q` and the
//! `jump` into its chain, each with a comment. The expressions are the ones
//! `nft` itself sends for those statements (checked against
//! `nft --debug=netlink` in the tests below, and against `nft -j list` on
//! the kernel in netns/tests/nft_netlink.rs), so listings look the same
//! whichever way a rule was added.
//!
//! Generic over the table family (`ip`, `inet`) and the address family
//! (v4, v6): in an `inet` table every DNAT rule starts with the
//! `meta nfproto` check of its address family, which nft inserts itself
//! before `ip daddr` / `ip6 daddr` (and which a wildcard rule needs there
//! too, so a v4 DNAT never applies to a v6 packet).

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::nfnl::{
    attr, cstr, Msg, NFTA_CHAIN_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_TABLE,
    NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NLM_F_ACK,
};
use crate::types::Proto;

const NLA_F_NESTED: u16 = 0x8000;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
/// NF_NAT_RANGE_PROTO_SPECIFIED: the rule sets the destination port.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// libnftnl's NFTNL_UDATA_RULE_COMMENT: `nft list` shows this TLV as
/// `comment "..."`.
const UDATA_RULE_COMMENT: u8 = 0;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_ECHO: u16 = 0x8;

/// Family of the nftables table holding the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFamily {
    Ip,
    Inet,
}

impl TableFamily {
    /// The nfgen family of the batch's messages.
    pub(crate) fn nfproto(self) -> u8 {
        match self {
            TableFamily::Ip => NFPROTO_IPV4,
            TableFamily::Inet => NFPROTO_INET,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Inet => "inet",
        }
    }
}

/// One published port: packets to `daddr` (any address when `None`),
/// protocol `proto`, port `dport` go to `to`:`to_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    pub daddr: Option<IpAddr>,
    pub proto: Proto,
    pub dport: u16,
    pub to: IpAddr,
    pub to_port: u16,
}

impl Dnat {
    /// Refuses what no table can hold: v6 addresses in an `ip` table, or a
    /// match and a target of different address families.
    pub(crate) fn check(&self, family: TableFamily) -> Result<()> {
        let bad = |why: &str| Error::InvalidConfig {
            what: "published port",
            value: format!(
                "{}{}/{} -> {}",
                self.daddr.map(|a| format!("{a}:")).unwrap_or_default(),
                self.dport,
                self.proto,
                self.to
            ),
            why: why.into(),
        };
        if family == TableFamily::Ip && self.to.is_ipv6() {
            return Err(bad(
                "an IPv6 target needs berth's inet table; use an IPv4 address",
            ));
        }
        match self.daddr {
            Some(d) if d.is_ipv6() != self.to.is_ipv6() => Err(bad(
                "host and container addresses are of different IP versions; publish on a host address of the container's version",
            )),
            _ => Ok(()),
        }
    }
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn nested(buf: &mut Vec<u8>, kind: u16, inner: &[u8]) {
    attr(buf, kind | NLA_F_NESTED, inner);
}

/// Appends one expression (`name` with its attributes) to a rule's list.
fn expr(list: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut e = Vec::new();
    attr(&mut e, NFTA_EXPR_NAME, &cstr(name));
    nested(&mut e, NFTA_EXPR_DATA, data);
    nested(list, NFTA_LIST_ELEM, &e);
}

fn meta(list: &mut Vec<u8>, key: u32) {
    let mut d = Vec::new();
    attr(&mut d, 2, &be32(key)); // NFTA_META_KEY
    attr(&mut d, 1, &be32(NFT_REG_1)); // NFTA_META_DREG
    expr(list, "meta", &d);
}

fn payload(list: &mut Vec<u8>, base: u32, offset: u32, len: u32) {
    let mut d = Vec::new();
    attr(&mut d, 1, &be32(NFT_REG_1)); // NFTA_PAYLOAD_DREG
    attr(&mut d, 2, &be32(base)); // NFTA_PAYLOAD_BASE
    attr(&mut d, 3, &be32(offset)); // NFTA_PAYLOAD_OFFSET
    attr(&mut d, 4, &be32(len)); // NFTA_PAYLOAD_LEN
    expr(list, "payload", &d);
}

fn cmp_eq(list: &mut Vec<u8>, value: &[u8]) {
    let mut v = Vec::new();
    attr(&mut v, NFTA_DATA_VALUE, value);
    let mut d = Vec::new();
    attr(&mut d, 1, &be32(NFT_REG_1)); // NFTA_CMP_SREG
    attr(&mut d, 2, &be32(NFT_CMP_EQ)); // NFTA_CMP_OP
    nested(&mut d, 3, &v); // NFTA_CMP_DATA
    expr(list, "cmp", &d);
}

fn immediate(list: &mut Vec<u8>, reg: u32, data: &[u8]) {
    let mut d = Vec::new();
    attr(&mut d, 1, &be32(reg)); // NFTA_IMMEDIATE_DREG
    nested(&mut d, 2, data); // NFTA_IMMEDIATE_DATA
    expr(list, "immediate", &d);
}

fn imm_value(list: &mut Vec<u8>, reg: u32, value: &[u8]) {
    let mut v = Vec::new();
    attr(&mut v, NFTA_DATA_VALUE, value);
    immediate(list, reg, &v);
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn nfproto_of(a: IpAddr) -> u8 {
    if a.is_ipv6() {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    }
}

/// The expressions of `[ip|ip6 daddr A] tcp|udp dport P dnat to C:Q`.
fn dnat_exprs(family: TableFamily, r: &Dnat) -> Vec<u8> {
    let mut l = Vec::new();
    if family == TableFamily::Inet {
        meta(&mut l, NFT_META_NFPROTO);
        cmp_eq(&mut l, &[nfproto_of(r.to)]);
    }
    if let Some(d) = r.daddr {
        // Destination address: offset 16 in the IPv4 header, 24 in IPv6.
        let (off, len) = if d.is_ipv6() { (24, 16) } else { (16, 4) };
        payload(&mut l, NFT_PAYLOAD_NETWORK_HEADER, off, len);
        cmp_eq(&mut l, &addr_bytes(d));
    }
    meta(&mut l, NFT_META_L4PROTO);
    let l4 = match r.proto {
        Proto::Tcp => libc::IPPROTO_TCP,
        Proto::Udp => libc::IPPROTO_UDP,
    };
    cmp_eq(&mut l, &[l4 as u8]);
    // The destination port, at offset 2 in both TCP and UDP headers.
    payload(&mut l, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
    cmp_eq(&mut l, &r.dport.to_be_bytes());
    imm_value(&mut l, NFT_REG_1, &addr_bytes(r.to));
    imm_value(&mut l, NFT_REG_2, &r.to_port.to_be_bytes());
    let mut d = Vec::new();
    attr(&mut d, 1, &be32(NFT_NAT_DNAT)); // NFTA_NAT_TYPE
    attr(&mut d, 2, &be32(u32::from(nfproto_of(r.to)))); // NFTA_NAT_FAMILY
    attr(&mut d, 3, &be32(NFT_REG_1)); // NFTA_NAT_REG_ADDR_MIN
    attr(&mut d, 5, &be32(NFT_REG_2)); // NFTA_NAT_REG_PROTO_MIN
    attr(&mut d, 7, &be32(NF_NAT_RANGE_PROTO_SPECIFIED)); // NFTA_NAT_FLAGS
    expr(&mut l, "nat", &d);
    l
}

fn jump_exprs(target: &str) -> Vec<u8> {
    let mut v = Vec::new();
    attr(&mut v, NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
    attr(&mut v, NFTA_VERDICT_CHAIN, &cstr(target));
    let mut data = Vec::new();
    nested(&mut data, NFTA_DATA_VERDICT, &v);
    let mut l = Vec::new();
    immediate(&mut l, NFT_REG_VERDICT, &data);
    l
}

/// A comment in libnftnl's user-data TLV format (type, length with the
/// trailing NUL, text); longer comments are cut as nft refuses them.
fn comment(text: &str) -> Vec<u8> {
    let mut t = text.as_bytes()[..text.len().min(127)].to_vec();
    t.push(0);
    let mut u = vec![UDATA_RULE_COMMENT, t.len() as u8];
    u.extend_from_slice(&t);
    u
}

/// A NEWRULE message; `echo` asks the kernel for the committed rule
/// (with its handle) and an ack, else only an error is answered.
fn rule(table: &str, chain: &str, exprs: &[u8], tag: &str, echo: bool) -> Msg {
    let mut a = Vec::new();
    attr(&mut a, NFTA_RULE_TABLE, &cstr(table));
    attr(&mut a, NFTA_RULE_CHAIN, &cstr(chain));
    nested(&mut a, NFTA_RULE_EXPRESSIONS, exprs);
    attr(&mut a, NFTA_RULE_USERDATA, &comment(tag));
    // `add rule`: append.
    let flags = NLM_F_CREATE | NLM_F_APPEND;
    Msg {
        kind: NFT_MSG_NEWRULE,
        flags: if echo {
            flags | NLM_F_ECHO | NLM_F_ACK
        } else {
            flags
        },
        attrs: a,
    }
}

/// `add chain <table> <chain>`: a regular chain; no error if it exists.
pub(crate) fn new_chain(table: &str, chain: &str) -> Msg {
    let mut a = Vec::new();
    attr(&mut a, NFTA_CHAIN_TABLE, &cstr(table));
    attr(&mut a, NFTA_CHAIN_NAME, &cstr(chain));
    Msg {
        kind: NFT_MSG_NEWCHAIN,
        flags: NLM_F_CREATE,
        attrs: a,
    }
}

/// `add rule <table> <chain> <r> comment "<tag>"`.
pub(crate) fn dnat_rule(family: TableFamily, table: &str, chain: &str, r: &Dnat, tag: &str) -> Msg {
    rule(table, chain, &dnat_exprs(family, r), tag, false)
}

/// `add rule <table> <chain> jump <target> comment "<tag>"`, echoed.
pub(crate) fn jump_rule(table: &str, chain: &str, target: &str, tag: &str) -> Msg {
    rule(table, chain, &jump_exprs(target), tag, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
        let mut v = Vec::new();
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let kind = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED;
            v.push((kind, &b[4..len]));
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        v
    }

    fn get(b: &[u8], kind: u16) -> &[u8] {
        attrs(b)
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d)
            .unwrap()
    }

    fn u(b: &[u8], kind: u16) -> u32 {
        u32::from_be_bytes(get(b, kind).try_into().unwrap())
    }

    /// Data as libnftnl prints it: 32-bit host-order words.
    fn words(d: &[u8]) -> String {
        d.chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                format!("0x{:08x}", u32::from_le_bytes(w))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Renders expressions the way `nft --debug=netlink` prints them.
    fn render(list: &[u8]) -> Vec<String> {
        attrs(list)
            .into_iter()
            .map(|(k, e)| {
                assert_eq!(k, NFTA_LIST_ELEM);
                let name = std::str::from_utf8(get(e, NFTA_EXPR_NAME)).unwrap();
                let d = get(e, NFTA_EXPR_DATA);
                match name.trim_end_matches('\0') {
                    "meta" => {
                        let key = match u(d, 2) {
                            15 => "nfproto",
                            16 => "l4proto",
                            k => panic!("meta key {k}"),
                        };
                        format!("[ meta load {key} => reg {} ]", u(d, 1))
                    }
                    "payload" => format!(
                        "[ payload load {}b @ {} header + {} => reg {} ]",
                        u(d, 4),
                        ["", "network", "transport"][u(d, 2) as usize],
                        u(d, 3),
                        u(d, 1)
                    ),
                    "cmp" => {
                        assert_eq!(u(d, 2), NFT_CMP_EQ);
                        let v = get(get(d, 3), NFTA_DATA_VALUE);
                        format!("[ cmp eq reg {} {} ]", u(d, 1), words(v))
                    }
                    "immediate" => {
                        let data = get(d, 2);
                        match attrs(data)[0] {
                            (NFTA_DATA_VALUE, v) => {
                                format!("[ immediate reg {} {} ]", u(d, 1), words(v))
                            }
                            (NFTA_DATA_VERDICT, v) => {
                                assert_eq!(u(v, NFTA_VERDICT_CODE), NFT_JUMP as u32);
                                let c = std::str::from_utf8(get(v, NFTA_VERDICT_CHAIN)).unwrap();
                                format!(
                                    "[ immediate reg {} jump -> {} ]",
                                    u(d, 1),
                                    c.trim_end_matches('\0')
                                )
                            }
                            (k, _) => panic!("immediate data {k}"),
                        }
                    }
                    "nat" => format!(
                        "[ nat {} {} addr_min reg {} proto_min reg {} flags 0x{:x} ]",
                        ["", "dnat"][u(d, 1) as usize],
                        if u(d, 2) == 10 { "ip6" } else { "ip" },
                        u(d, 3),
                        u(d, 5),
                        u(d, 7)
                    ),
                    n => panic!("expression {n}"),
                }
            })
            .collect()
    }

    fn exprs_of(m: &Msg) -> Vec<String> {
        render(get(&m.attrs, NFTA_RULE_EXPRESSIONS))
    }

    fn dnat(daddr: Option<&str>, proto: Proto, dport: u16, to: &str, to_port: u16) -> Dnat {
        Dnat {
            daddr: daddr.map(|a| a.parse().unwrap()),
            proto,
            dport,
            to: to.parse().unwrap(),
            to_port,
        }
    }

    // The expected lines below are `nft --debug=netlink` output (nft 1.0.6)
    // for the same statements.

    #[test]
    fn ip_table_host_address_tcp() {
        let r = dnat(Some("192.168.5.4"), Proto::Tcp, 8080, "10.1.1.2", 80);
        let m = dnat_rule(TableFamily::Ip, "t", "ctr_x", &r, "ctr:x");
        assert_eq!(
            exprs_of(&m),
            [
                "[ payload load 4b @ network header + 16 => reg 1 ]",
                "[ cmp eq reg 1 0x0405a8c0 ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x0000901f ]",
                "[ immediate reg 1 0x0201010a ]",
                "[ immediate reg 2 0x00005000 ]",
                "[ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]",
            ]
        );
        assert_eq!(get(&m.attrs, NFTA_RULE_USERDATA), b"\x00\x06ctr:x\x00");
        assert_eq!(m.kind, NFT_MSG_NEWRULE);
        assert_eq!(m.flags, NLM_F_CREATE | NLM_F_APPEND);
    }

    #[test]
    fn ip_table_wildcard_udp() {
        let r = dnat(None, Proto::Udp, 53, "10.1.1.2", 5353);
        assert_eq!(
            exprs_of(&dnat_rule(TableFamily::Ip, "t", "ctr_x", &r, "ctr:x")),
            [
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000011 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x00003500 ]",
                "[ immediate reg 1 0x0201010a ]",
                "[ immediate reg 2 0x0000e914 ]",
                "[ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]",
            ]
        );
    }

    #[test]
    fn inet_table_v4_checks_nfproto() {
        let r = dnat(Some("192.168.5.4"), Proto::Tcp, 8080, "10.1.1.2", 80);
        assert_eq!(
            exprs_of(&dnat_rule(TableFamily::Inet, "t", "ctr_x", &r, "ctr:x"))[..2],
            [
                "[ meta load nfproto => reg 1 ]",
                "[ cmp eq reg 1 0x00000002 ]",
            ]
        );
    }

    #[test]
    fn inet_table_v6_host_address() {
        let r = dnat(Some("fd00::1"), Proto::Tcp, 8080, "fd00::2", 80);
        assert_eq!(
            exprs_of(&dnat_rule(TableFamily::Inet, "t", "ctr_x", &r, "ctr:x")),
            [
                "[ meta load nfproto => reg 1 ]",
                "[ cmp eq reg 1 0x0000000a ]",
                "[ payload load 16b @ network header + 24 => reg 1 ]",
                "[ cmp eq reg 1 0x000000fd 0x00000000 0x00000000 0x01000000 ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000006 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x0000901f ]",
                "[ immediate reg 1 0x000000fd 0x00000000 0x00000000 0x02000000 ]",
                "[ immediate reg 2 0x00005000 ]",
                "[ nat dnat ip6 addr_min reg 1 proto_min reg 2 flags 0x2 ]",
            ]
        );
    }

    #[test]
    fn inet_table_v6_wildcard_udp() {
        let r = dnat(None, Proto::Udp, 8080, "fd00::2", 80);
        assert_eq!(
            exprs_of(&dnat_rule(TableFamily::Inet, "t", "ctr_x", &r, "ctr:x")),
            [
                "[ meta load nfproto => reg 1 ]",
                "[ cmp eq reg 1 0x0000000a ]",
                "[ meta load l4proto => reg 1 ]",
                "[ cmp eq reg 1 0x00000011 ]",
                "[ payload load 2b @ transport header + 2 => reg 1 ]",
                "[ cmp eq reg 1 0x0000901f ]",
                "[ immediate reg 1 0x000000fd 0x00000000 0x00000000 0x02000000 ]",
                "[ immediate reg 2 0x00005000 ]",
                "[ nat dnat ip6 addr_min reg 1 proto_min reg 2 flags 0x2 ]",
            ]
        );
    }

    #[test]
    fn jump_and_chain() {
        let m = jump_rule("t", "ports", "ctr_x", "ctr:x");
        assert_eq!(exprs_of(&m), ["[ immediate reg 0 jump -> ctr_x ]"]);
        assert_eq!(
            m.flags,
            NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO | NLM_F_ACK
        );
        assert_eq!(get(&m.attrs, NFTA_RULE_CHAIN), b"ports\0");
        let c = new_chain("t", "ctr_x");
        assert_eq!((c.kind, c.flags), (NFT_MSG_NEWCHAIN, NLM_F_CREATE));
        assert_eq!(get(&c.attrs, NFTA_CHAIN_NAME), b"ctr_x\0");
    }

    #[test]
    fn mixed_families_are_refused() {
        let v6 = dnat(None, Proto::Tcp, 80, "fd00::2", 80);
        assert!(v6.check(TableFamily::Ip).is_err());
        assert!(v6.check(TableFamily::Inet).is_ok());
        let mixed = dnat(Some("10.0.0.1"), Proto::Tcp, 80, "fd00::2", 80);
        assert!(mixed.check(TableFamily::Inet).is_err());
        let v4 = dnat(Some("10.0.0.1"), Proto::Tcp, 80, "10.1.1.2", 80);
        assert!(v4.check(TableFamily::Ip).is_ok());
    }
}

//! Answering one query from the records, or deciding it goes upstream.
//! Pure: no sockets, so every case is unit-tested.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::records::{Asker, Records, Rotor};

/// Docker's embedded DNS answers with this TTL (seconds).
pub const TTL: u32 = 600;

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Relay the query upstream (the caller answers SERVFAIL if that fails).
    Forward,
    /// Not a DNS query at all: drop it silently.
    Drop,
}

/// Answers `query` for `asker`. `max_udp` is `Some(limit)` when the reply
/// goes back over UDP, where an answer over the client's size gets the TC
/// bit so the client retries over TCP.
pub fn answer(
    records: &Records,
    rotor: &mut Rotor,
    asker: &Asker,
    query: &[u8],
    udp: bool,
) -> Outcome {
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => {
            return match query.get(..2) {
                Some(id) => Outcome::Reply(raw_error(
                    u16::from_be_bytes([id[0], id[1]]),
                    ResponseCode::FormErr,
                )),
                None => Outcome::Drop,
            }
        }
    };
    if msg.metadata.message_type != MessageType::Query {
        return Outcome::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return reply(error(&msg, ResponseCode::NotImp), &msg, udp);
    }
    let [q] = msg.queries.as_slice() else {
        return reply(error(&msg, ResponseCode::FormErr), &msg, udp);
    };
    if q.query_class() != DNSClass::IN {
        return forward_or_fail(asker, &msg, udp);
    }
    let qname = q.name().to_ascii();
    if q.query_type() == RecordType::PTR {
        let found = match (ptr_address(&qname), ptr_address6(&qname)) {
            (Some(ip), _) => records.lookup_ptr(asker, ip),
            (None, Some(ip)) => records.lookup_ptr6(asker, ip),
            (None, None) => None,
        };
        if let Some(target) = found {
            let Ok(target) = Name::from_ascii(format!("{target}.")) else {
                return forward_or_fail(asker, &msg, udp);
            };
            let mut resp = response(&msg, ResponseCode::NoError);
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::PTR(PTR(target)),
            ));
            return reply(resp, &msg, udp);
        }
        return forward_or_fail(asker, &msg, udp);
    }
    let Some(mut ips) = records.lookup(asker, &qname) else {
        return forward_or_fail(asker, &msg, udp);
    };
    let mut resp = response(&msg, ResponseCode::NoError);
    // A name we own has A records and, on dual-stack networks, AAAA
    // records; other types (and AAAA of a v4-only container) get an empty
    // NOERROR (docker does the same), never a forward that could answer
    // NXDOMAIN and make clients give up on the A record.
    if q.query_type() == RecordType::A {
        rotor.rotate(asker, &qname, &mut ips);
        for ip in ips {
            resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
        }
    }
    if q.query_type() == RecordType::AAAA {
        let mut ips6 = records.lookup6(asker, &qname).unwrap_or_default();
        rotor.rotate(asker, &qname, &mut ips6);
        for ip in ips6 {
            resp.add_answer(Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::AAAA(AAAA(ip)),
            ));
        }
    }
    reply(resp, &msg, udp)
}

/// The address of `d.c.b.a.in-addr.arpa.`.
fn ptr_address(qname: &str) -> Option<Ipv4Addr> {
    let lower = qname.trim_end_matches('.').to_ascii_lowercase();
    let rev = lower.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = rev
        .split('.')
        .map(|p| p.parse::<u8>().ok())
        .collect::<Option<Vec<u8>>>()?;
    let [d, c, b, a] = parts.as_slice() else {
        return None;
    };
    Some(Ipv4Addr::new(*a, *b, *c, *d))
}

/// The address of a 32-nibble `...ip6.arpa.` name.
fn ptr_address6(qname: &str) -> Option<Ipv6Addr> {
    let lower = qname.trim_end_matches('.').to_ascii_lowercase();
    let rev = lower.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rev
        .split('.')
        .map(|p| match p.len() {
            1 => u8::from_str_radix(p, 16).ok(),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut v: u128 = 0;
    for n in nibbles.iter().rev() {
        v = (v << 4) | u128::from(*n);
    }
    Some(Ipv6Addr::from(v))
}

fn forward_or_fail(asker: &Asker, msg: &Message, udp: bool) -> Outcome {
    if asker.may_forward {
        Outcome::Forward
    } else {
        // Docker: a container with no network that has egress (only
        // `--internal` ones) gets SERVFAIL for every name it does not own.
        reply(error(msg, ResponseCode::ServFail), msg, udp)
    }
}

fn response(query: &Message, code: ResponseCode) -> Message {
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.response_code = code;
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = code == ResponseCode::NoError;
    resp.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        resp.set_edns(e);
    }
    resp
}

fn error(query: &Message, code: ResponseCode) -> Message {
    response(query, code)
}

/// SERVFAIL for `query` (upstream failed or timed out).
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    match Message::from_vec(query) {
        Ok(m) => m_to_vec(&error(&m, ResponseCode::ServFail)),
        Err(_) => {
            let id = query.get(..2)?;
            Some(raw_error(
                u16::from_be_bytes([id[0], id[1]]),
                ResponseCode::ServFail,
            ))
        }
    }
}

/// An upstream answer too large for the client's UDP buffer becomes an
/// empty TC answer, so the client retries over TCP.
pub fn fit_udp(query: &[u8], resp: Vec<u8>) -> Vec<u8> {
    let Ok(q) = Message::from_vec(query) else {
        return resp;
    };
    if resp.len() <= q.max_payload() as usize {
        return resp;
    }
    let mut t = response(&q, ResponseCode::NoError);
    t.metadata.truncation = true;
    t.metadata.authoritative = false;
    m_to_vec(&t).unwrap_or(resp)
}

fn reply(resp: Message, query: &Message, udp: bool) -> Outcome {
    let Some(bytes) = m_to_vec(&resp) else {
        return Outcome::Drop;
    };
    if udp && bytes.len() > query.max_payload() as usize {
        let mut t = response(query, resp.metadata.response_code);
        t.metadata.truncation = true;
        return m_to_vec(&t).map_or(Outcome::Drop, Outcome::Reply);
    }
    Outcome::Reply(bytes)
}

fn m_to_vec(m: &Message) -> Option<Vec<u8>> {
    m.to_vec().ok()
}

/// An error answer for a message we could not parse: header only.
fn raw_error(id: u16, code: ResponseCode) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[..2].copy_from_slice(&id.to_be_bytes());
    h[2] = 0x80; // QR
    h[3] = code.low();
    h
}

/// A query message for `name` (tests and probes).
pub fn build_query(id: u16, name: &str, qtype: RecordType) -> Option<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, qtype));
    m.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Lease, NetworkState};
    use std::path::PathBuf;

    fn records(internal: bool, n: u8) -> Records {
        let leases = (0..n)
            .map(|i| Lease {
                container_id: format!("{:0>64}", i),
                ip: Ipv4Addr::new(10, 9, 1, 2 + i),
                ip6: (i == 1).then(|| "fd09:1::3".parse().unwrap()),
                mac: [0; 6],
                ifname: "eth0".into(),
                host_veth: "vb".into(),
                netns_path: PathBuf::new(),
                name: format!("c{i}"),
                aliases: vec!["all".into()],
                ports: vec![],
                dns: vec![],
                port_rules: Vec::new(),
                redirects: Vec::new(),
            })
            .map(|l| (l.container_id.clone(), l))
            .collect();
        Records::new(&[NetworkState {
            id: "id".into(),
            name: "n".into(),
            bridge: "br".into(),
            subnet: "10.9.1.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 9, 1, 1),
            ip_range: None,
            internal,
            mtu: None,
            link_mtu: None,
            labels: Default::default(),
            table: "t".into(),
            leases,
            v6: None,
        }])
    }

    fn ask(r: &Records, name: &str, t: RecordType, udp: bool) -> Outcome {
        let asker = r.asker("n", Ipv4Addr::new(10, 9, 1, 2));
        answer(
            r,
            &mut Rotor::default(),
            &asker,
            &build_query(7, name, t).unwrap(),
            udp,
        )
    }

    fn parse(o: Outcome) -> Message {
        match o {
            Outcome::Reply(b) => Message::from_vec(&b).unwrap(),
            o => panic!("expected a reply, got {o:?}"),
        }
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_record_for_a_container() {
        let r = records(false, 3);
        let m = parse(ask(&r, "C1.", RecordType::A, true));
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(a_records(&m), [Ipv4Addr::new(10, 9, 1, 3)]);
        assert_eq!(m.answers[0].ttl, TTL);
        assert_eq!(m.queries.len(), 1);
    }

    #[test]
    fn aaaa_and_mx_of_an_owned_name_are_empty_noerror() {
        let r = records(false, 1);
        for t in [RecordType::AAAA, RecordType::MX] {
            let m = parse(ask(&r, "c0.", t, true));
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert!(m.answers.is_empty());
        }
    }

    #[test]
    fn aaaa_for_a_dual_stack_container_and_v6_ptr() {
        let r = records(false, 2);
        let m = parse(ask(&r, "c1.", RecordType::AAAA, true));
        let got: Vec<Ipv6Addr> = m
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                RData::AAAA(x) => Some(x.0),
                _ => None,
            })
            .collect();
        assert_eq!(got, ["fd09:1::3".parse::<Ipv6Addr>().unwrap()]);
        // a v4-only container: known name, no AAAA
        let m = parse(ask(&r, "c0.", RecordType::AAAA, true));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let ptr = "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.9.0.d.f.ip6.arpa.";
        assert_eq!(ptr_address6(ptr), Some("fd09:1::3".parse().unwrap()));
        let m = parse(ask(&r, ptr, RecordType::PTR, true));
        assert_eq!(m.answers.len(), 1);
        assert_eq!(ptr_address6("1.ip6.arpa."), None);
    }

    #[test]
    fn unknown_names_forward_or_fail_on_internal_networks() {
        assert_eq!(
            ask(&records(false, 1), "example.com.", RecordType::A, true),
            Outcome::Forward
        );
        let m = parse(ask(&records(true, 1), "example.com.", RecordType::A, true));
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        // owned names still answer on internal networks
        let m = parse(ask(&records(true, 1), "c0.", RecordType::A, true));
        assert_eq!(a_records(&m), [Ipv4Addr::new(10, 9, 1, 2)]);
    }

    #[test]
    fn ptr_for_a_container_address() {
        let r = records(false, 2);
        let m = parse(ask(&r, "3.1.9.10.in-addr.arpa.", RecordType::PTR, true));
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "c1.n."),
            d => panic!("{d:?}"),
        }
        assert_eq!(
            ask(&r, "9.1.9.10.in-addr.arpa.", RecordType::PTR, true),
            Outcome::Forward
        );
        assert_eq!(
            ptr_address("4.3.2.1.IN-ADDR.ARPA."),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(ptr_address("3.2.1.in-addr.arpa."), None);
        assert_eq!(ptr_address("x.3.2.1.in-addr.arpa."), None);
    }

    #[test]
    fn too_many_records_for_udp_set_tc() {
        let r = records(false, 60);
        let m = parse(ask(&r, "all.", RecordType::A, true));
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let m = parse(ask(&r, "all.", RecordType::A, false));
        assert!(!m.metadata.truncation);
        assert_eq!(a_records(&m).len(), 60);
    }

    #[test]
    fn garbage_and_odd_messages() {
        let r = records(false, 1);
        let asker = r.asker("n", Ipv4Addr::new(10, 9, 1, 2));
        let mut rot = Rotor::default();
        assert_eq!(answer(&r, &mut rot, &asker, &[1], true), Outcome::Drop);
        let Outcome::Reply(b) = answer(&r, &mut rot, &asker, &[0xab, 0xcd, 1, 2, 3], true) else {
            panic!()
        };
        assert_eq!(&b[..4], &[0xab, 0xcd, 0x80, 1]);
        // a response is never answered (no reflection loops)
        let mut resp = Message::from_vec(&build_query(1, "c0.", RecordType::A).unwrap()).unwrap();
        resp.metadata.message_type = MessageType::Response;
        assert_eq!(
            answer(&r, &mut rot, &asker, &resp.to_vec().unwrap(), true),
            Outcome::Drop
        );
        // two questions
        let mut two = Message::from_vec(&build_query(1, "c0.", RecordType::A).unwrap()).unwrap();
        two.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
        let m = parse(answer(&r, &mut rot, &asker, &two.to_vec().unwrap(), true));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn servfail_and_fit_udp() {
        let q = build_query(9, "example.com.", RecordType::A).unwrap();
        let m = Message::from_vec(&servfail(&q).unwrap()).unwrap();
        assert_eq!(m.metadata.id, 9);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        let big = vec![0u8; 600];
        let t = Message::from_vec(&fit_udp(&q, big)).unwrap();
        assert!(t.metadata.truncation);
        assert_eq!(fit_udp(&q, vec![1, 2, 3]), [1, 2, 3]);
    }
}

//! Who is asking: the peer address of the connection, or — only when that peer is a proxy the
//! operator named (`--trusted-proxy CIDR`) — the address the proxies say they forwarded for.
//! Rate limits and password-failure counts are kept per client so computed; a header sent by
//! anyone else is ignored, so a client cannot pick a fresh address per request.

use std::net::IpAddr;

pub use ipnet::IpNet;

/// The client of a request, as rate limits count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key limits count under: the address, or for IPv6 its /64 (one host or home network
    /// gets a /64 and can pick any address inside it).
    pub fn key(&self) -> String {
        match self.0 {
            IpAddr::V4(a) => format!("ip:{a}"),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => format!("ip:{v4}"),
                None => {
                    let s = a.segments();
                    format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

/// The client of a request from `peer` carrying the `X-Forwarded-For` values `forwarded` (in
/// header order): walking the hops from the right, the first address that is not a trusted
/// proxy. A hop that does not parse stops the walk at the last trusted one (what it says
/// cannot be checked); all hops trusted gives the leftmost.
pub fn client_of(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> ClientAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    let mut client = canonical(peer);
    if !is_trusted(&client) {
        return ClientAddr(client);
    }
    let hops = forwarded.iter().flat_map(|h| h.split(',')).map(str::trim).filter(|h| !h.is_empty());
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = canonical(ip);
        if !is_trusted(&client) {
            break;
        }
    }
    ClientAddr(client)
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4 peers) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(client_of(ip("203.0.113.9"), &["198.51.100.1"], &proxies).0, ip("203.0.113.9"), "not a proxy");
        assert_eq!(client_of(ip("10.1.2.3"), &["198.51.100.1"], &proxies).0, ip("198.51.100.1"));
        // A client that sends its own header gets it appended to by the proxy: the rightmost
        // untrusted hop is what the proxy saw, whatever the client wrote before it.
        assert_eq!(client_of(ip("10.1.2.3"), &["1.1.1.1, 198.51.100.1"], &proxies).0, ip("198.51.100.1"));
        assert_eq!(client_of(ip("10.1.2.3"), &["198.51.100.1", "10.9.9.9"], &proxies).0, ip("198.51.100.1"));
        assert_eq!(client_of(ip("10.1.2.3"), &["garbage, 10.9.9.9"], &proxies).0, ip("10.9.9.9"));
        assert_eq!(client_of(ip("10.1.2.3"), &[], &proxies).0, ip("10.1.2.3"));
        assert_eq!(client_of(ip("10.1.2.3"), &["10.4.4.4"], &proxies).0, ip("10.4.4.4"), "all trusted: leftmost");
        assert_eq!(client_of(ip("::ffff:10.1.2.3"), &["198.51.100.1"], &proxies).0, ip("198.51.100.1"));
        assert_eq!(client_of(ip("127.0.0.1"), &["198.51.100.1"], &[]).0, ip("127.0.0.1"), "no proxies named");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = ClientAddr(ip("2001:db8:1:2:aaaa::1")).key();
        assert_eq!(a, "ip:2001:db8:1:2::/64");
        assert_eq!(ClientAddr(ip("2001:db8:1:2:bbbb::7")).key(), a);
        assert_ne!(ClientAddr(ip("2001:db8:1:3::1")).key(), a);
        assert_eq!(ClientAddr(ip("192.0.2.1")).key(), "ip:192.0.2.1");
    }
}

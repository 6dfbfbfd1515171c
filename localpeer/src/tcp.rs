//! Matching a TCP connection to the peer's own socket among the machine's sockets.

use std::net::{IpAddr, SocketAddr};

use crate::Uid;

/// v4-mapped v6 addresses (a dual-stack listener's view of a v4 client) as plain v4, so both
/// ends of one connection compare equal whichever table each is in.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// The owner of the socket that is the other end of the connection `local` <- `peer`: the row
/// whose local address is `peer` and whose remote address is `local`. Rows are (local,
/// remote, uid) as `/proc/net/tcp` gives them.
pub fn find_owner(
    rows: impl IntoIterator<Item = (SocketAddr, SocketAddr, Uid)>,
    local: SocketAddr,
    peer: SocketAddr,
) -> Option<Uid> {
    let (local, peer) = (canonical(local), canonical(peer));
    rows.into_iter().find(|&(l, r, _)| canonical(l) == peer && canonical(r) == local).map(|(_, _, uid)| uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_peer_row_not_the_servers_own() {
        let server = a("127.0.0.1:3240");
        let client = a("127.0.0.1:50000");
        let rows = [
            (server, a("0.0.0.0:0"), 1000),    // the listener
            (server, client, 1000),            // the accepted socket: the server's own
            (client, server, 65534),           // the client's socket
            (a("127.0.0.1:50001"), server, 0), // another client
        ];
        assert_eq!(find_owner(rows, server, client), Some(65534));
        assert_eq!(find_owner(rows, server, a("127.0.0.1:50002")), None);
    }

    #[test]
    fn v4_mapped_matches_v4() {
        let rows = [(a("127.0.0.1:50000"), a("127.0.0.1:3240"), 7)];
        assert_eq!(find_owner(rows, a("[::ffff:127.0.0.1]:3240"), a("[::ffff:127.0.0.1]:50000")), Some(7));
    }
}

//! Matching a TCP connection to the peer's own socket among the machine's sockets.

use std::net::{IpAddr, SocketAddr};

/// An address as both tables agree on it: v4-mapped v6 (a dual-stack listener's view of a v4
/// client) as plain v4, and only address and port (the tables carry no scope id or flow
/// label), so both ends of one connection compare equal whichever table each is in.
fn canonical(a: SocketAddr) -> (IpAddr, u16) {
    (a.ip().to_canonical(), a.port())
}

/// One row of `/proc/net/tcp`: local and remote address, the owner's uid, the socket's inode.
pub type Row = (SocketAddr, SocketAddr, u32, u64);

/// The owner of the socket that is the other end of the connection `local` <- `peer`: the row
/// whose local address is `peer` and whose remote address is `local`, held by a process. A
/// row without an inode is a socket no process holds any more (closed: an orphan, or a
/// time-wait entry, which the kernel lists with uid 0): no peer, so a client that sent its
/// bytes and hung up before the server looked is never taken for root or anyone else.
pub fn find_owner(rows: impl IntoIterator<Item = Row>, local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    peer_rows(rows, local, peer).find(|&(_, _, _, inode)| inode != 0).map(|(_, _, uid, _)| uid)
}

/// Whether the peer's socket is on this machine but closed (a row, and no process holds it).
pub fn closed_here(rows: impl IntoIterator<Item = Row>, local: SocketAddr, peer: SocketAddr) -> bool {
    peer_rows(rows, local, peer).any(|(_, _, _, inode)| inode == 0)
}

fn peer_rows(rows: impl IntoIterator<Item = Row>, local: SocketAddr, peer: SocketAddr) -> impl Iterator<Item = Row> {
    let (local, peer) = (canonical(local), canonical(peer));
    rows.into_iter().filter(move |&(l, r, _, _)| canonical(l) == peer && canonical(r) == local)
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
            (server, a("0.0.0.0:0"), 1000, 11),    // the listener
            (server, client, 1000, 12),            // the accepted socket: the server's own
            (client, server, 65534, 13),           // the client's socket
            (a("127.0.0.1:50001"), server, 0, 14), // another client
        ];
        assert_eq!(find_owner(rows, server, client), Some(65534));
        assert_eq!(find_owner(rows, server, a("127.0.0.1:50002")), None);
    }

    #[test]
    fn a_closed_socket_is_no_peer() {
        let (server, client) = (a("127.0.0.1:3240"), a("127.0.0.1:50000"));
        // A client that wrote and closed: its time-wait entry says uid 0, inode 0.
        assert_eq!(find_owner([(client, server, 0, 0)], server, client), None);
    }

    #[test]
    fn v4_mapped_matches_v4() {
        let rows = [(a("127.0.0.1:50000"), a("127.0.0.1:3240"), 7, 1)];
        assert_eq!(find_owner(rows, a("[::ffff:127.0.0.1]:3240"), a("[::ffff:127.0.0.1]:50000")), Some(7));
    }
}

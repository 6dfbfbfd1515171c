//! The rule on real sockets of this process: its own connections are its own user's.

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

use localpeer::{own_uid, tcp_peer, OwnerOnly, Peer};

#[test]
fn a_loopback_connection_of_this_process_is_its_own_user() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(tcp_peer(server.local_addr().unwrap(), peer).unwrap(), Peer::Local { uid: own_uid() });
    OwnerOnly::new().admit_tcp(server.local_addr().unwrap(), peer).unwrap();
}

#[test]
fn a_v6_loopback_connection_too() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else { return }; // no IPv6 on this machine
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(tcp_peer(server.local_addr().unwrap(), peer).unwrap(), Peer::Local { uid: own_uid() });
}

#[test]
fn a_unix_socket_peer_is_its_own_user() {
    let (a, _b) = UnixStream::pair().unwrap();
    assert_eq!(localpeer::unix_peer_uid(&a).unwrap(), own_uid());
    OwnerOnly::new().admit_unix(&a).unwrap();
}

#[test]
fn another_user_and_a_remote_peer_are_refused() {
    let rule = OwnerOnly::new();
    let other = own_uid().wrapping_add(1);
    let e = rule.admit(Peer::Local { uid: other }, "127.0.0.1:5").unwrap_err();
    assert!(e.to_string().contains(&format!("uid {other}")), "{e}");
    assert!(rule.admit(Peer::Remote, "10.0.0.1:5").is_err());
    assert!(rule.allowing_remote(true).admit(Peer::Remote, "10.0.0.1:5").is_ok());
    // Allowing remote peers never admits another local user.
    assert!(rule.allowing_remote(true).admit(Peer::Local { uid: other }, "x").is_err());
}

#[test]
fn a_peer_that_has_hung_up_is_not_admitted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = listener.local_addr().unwrap();
    // An address no socket has.
    let gone = "127.0.0.1:1".parse().unwrap();
    assert!(OwnerOnly::new().admit_tcp(local, gone).is_err());
}

#[test]
fn root_only_when_asked() {
    let rule = OwnerOnly::new();
    if rule.owner() == 0 {
        return; // root is the owner here: nothing to tell apart
    }
    assert!(rule.admit(Peer::Local { uid: 0 }, "x").is_err());
    assert!(rule.admitting_root(true).admit(Peer::Local { uid: 0 }, "x").is_ok());
    assert!(rule.admitting_root(true).admit(Peer::Local { uid: rule.owner() + 1 }, "x").is_err());
}

#[test]
fn a_client_that_hung_up_before_the_accept_is_not_admitted() {
    // It wrote its request and closed: no process holds its socket any more (the kernel lists
    // such sockets without an inode, a time-wait one even as uid 0), so nothing it sent may be
    // taken for its owner's, whoever that was.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    std::io::Write::write_all(&mut client, b"a blind request").unwrap();
    drop(client);
    let (server, peer) = listener.accept().unwrap();
    assert!(OwnerOnly::new().admit_tcp(server.local_addr().unwrap(), peer).is_err());
}

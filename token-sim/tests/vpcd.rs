//! The vpcd front-end against a stand-in for pcscd's vpcd driver on loopback: power, ATR,
//! APDUs, removal and insertion, pcscd restarts, shutdown.

use std::time::Duration;

use proto::clock::FixedClock;
use proto::piv::PIV_AID;
use token_sim::frontends::vpcd::{self, Control, LinkState};
use token_sim::{KeySpec, SharedKey, VirtualKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

struct Served {
    inserted: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    state: watch::Receiver<LinkState>,
    task: tokio::task::JoinHandle<()>,
}

fn start(addr: String) -> Served {
    let spec = KeySpec { seed: Some(7), ..KeySpec::default() };
    let key = SharedKey::new(VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap());
    let (inserted, inserted_rx) = watch::channel(true);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (state_tx, state) = watch::channel(LinkState::Connecting);
    let task = tokio::spawn(vpcd::serve(key, addr, Control { inserted: inserted_rx, shutdown: shutdown_rx }, state_tx));
    Served { inserted, shutdown, state, task }
}

/// What pcscd's vpcd does: send a frame, read the answer.
async fn ask(s: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    s.write_all(&vpcd::encode(payload)).await.unwrap();
    let mut len = [0u8; 2];
    timeout(T, s.read_exact(&mut len)).await.expect("card answers").unwrap();
    let mut out = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut out).await.unwrap();
    out
}

async fn control(s: &mut TcpStream, byte: u8) {
    s.write_all(&vpcd::encode(&[byte])).await.unwrap();
}

async fn accept(l: &TcpListener) -> TcpStream {
    timeout(T, l.accept()).await.expect("the key connects").unwrap().0
}

/// The peer closed the connection: what vpcd sees when the key is pulled out.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(timeout(T, s.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
}

fn select_apdu() -> Vec<u8> {
    let mut a = vec![0x00, 0xA4, 0x04, 0x00, PIV_AID.len() as u8];
    a.extend_from_slice(&PIV_AID);
    a.push(0);
    a
}

const VERIFY_STATUS: [u8; 4] = [0x00, 0x20, 0x00, 0x80];
const VERIFY_123456: [u8; 13] = [0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF];

async fn wait_state(rx: &mut watch::Receiver<LinkState>, want: LinkState) {
    timeout(T, rx.wait_for(|s| *s == want)).await.expect("state reached").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_atr_and_apdus() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut served = start(l.local_addr().unwrap().to_string());
    let mut s = accept(&l).await;
    wait_state(&mut served.state, LinkState::Connected).await;

    let atr = ask(&mut s, &[0x04]).await;
    assert_eq!(atr, token_sim::piv::ATR.to_vec());
    // Unpowered until pcscd powers it.
    assert_eq!(ask(&mut s, &select_apdu()).await, vec![0x69, 0x85]);
    control(&mut s, 0x01).await;
    let sel = ask(&mut s, &select_apdu()).await;
    assert_eq!(sel[0], 0x61, "SELECT answers the application property template");
    assert_eq!(sel[sel.len() - 2..], [0x90, 0x00]);
    assert_eq!(ask(&mut s, &VERIFY_123456).await, vec![0x90, 0x00]);
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x90, 0x00]);
    // An ATR request (pcscd's presence poll) leaves the session alone; a reset ends it.
    ask(&mut s, &[0x04]).await;
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x90, 0x00]);
    control(&mut s, 0x02).await;
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x63, 0xC3]);
    // Power off: the card answers nothing a host could take for success.
    control(&mut s, 0x00).await;
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x69, 0x85]);

    served.shutdown.send_replace(true);
    assert!(closed(&mut s).await, "shutdown disconnects from pcscd");
    timeout(T, served.task).await.unwrap().unwrap();
    assert_eq!(*served.state.borrow(), LinkState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_closes_the_connection_and_insertion_reconnects() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut served = start(l.local_addr().unwrap().to_string());
    let mut s = accept(&l).await;
    control(&mut s, 0x01).await;
    assert_eq!(ask(&mut s, &VERIFY_123456).await, vec![0x90, 0x00]);

    served.inserted.send_replace(false);
    assert!(closed(&mut s).await, "pulling the key out closes the reader's connection");
    wait_state(&mut served.state, LinkState::Removed).await;
    // Stays out: no new connection while removed.
    assert!(timeout(Duration::from_millis(400), l.accept()).await.is_err());

    served.inserted.send_replace(true);
    let mut s = accept(&l).await;
    wait_state(&mut served.state, LinkState::Connected).await;
    control(&mut s, 0x01).await;
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x63, 0xC3], "a re-inserted key starts a new session");
    served.shutdown.send_replace(true);
    timeout(T, served.task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_pcscd_restarts() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut served = start(addr.to_string());
    let mut s = accept(&l).await;
    control(&mut s, 0x01).await;
    assert_eq!(ask(&mut s, &VERIFY_STATUS).await, vec![0x63, 0xC3]);

    // pcscd goes away (connection and listener), then comes back on the same port.
    drop(s);
    drop(l);
    wait_state(&mut served.state, LinkState::Connecting).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l = TcpListener::bind(addr).await.unwrap();
    let mut s = accept(&l).await;
    wait_state(&mut served.state, LinkState::Connected).await;
    control(&mut s, 0x01).await;
    assert_eq!(ask(&mut s, &[0x04]).await, token_sim::piv::ATR.to_vec());
    served.shutdown.send_replace(true);
    timeout(T, served.task).await.unwrap().unwrap();
}

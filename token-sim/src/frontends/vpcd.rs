//! Front-end for vsmartcard's vpcd: the pcscd reader driver that turns a TCP connection into a
//! smart-card reader. pcscd listens (127.0.0.1:35963 for reader "Virtual PCD 00 00", 35964 for
//! "... 00 01"); the card connects. A connected card is an inserted card: closing the connection
//! is exactly what pulling the key out looks like to every PC/SC program.
//!
//! Wire format, both directions: u16 big-endian length, then the payload. From pcscd, a 1-byte
//! payload is a control (00 power off, 01 power on, 02 reset, 04 send ATR); anything longer is a
//! command APDU. Controls other than 04 get no answer.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::{SharedKey, VirtualKey};

/// The port of vpcd's first reader ("Virtual PCD 00 00"); the second is one higher.
pub const DEFAULT_PORT: u16 = 35963;

/// What pcscd asks of the card in one frame. An APDU may carry a PIN or a key: `{:?}` shows
/// its header and length only, and its bytes are wiped once answered.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    PowerOff,
    PowerOn,
    Reset,
    Atr,
    Apdu(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::PowerOff => f.write_str("PowerOff"),
            Request::PowerOn => f.write_str("PowerOn"),
            Request::Reset => f.write_str("Reset"),
            Request::Atr => f.write_str("Atr"),
            Request::Apdu(a) => write!(f, "Apdu({:02X?}.., {} bytes)", &a[..a.len().min(4)], a.len()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty vpcd frame")]
    Empty,
    #[error("unknown vpcd control byte {0:#04x}")]
    UnknownControl(u8),
}

impl Request {
    pub fn parse(payload: &[u8]) -> Result<Request, FrameError> {
        match payload {
            [] => Err(FrameError::Empty),
            [0x00] => Ok(Request::PowerOff),
            [0x01] => Ok(Request::PowerOn),
            [0x02] => Ok(Request::Reset),
            [0x04] => Ok(Request::Atr),
            [c] => Err(FrameError::UnknownControl(*c)),
            apdu => Ok(Request::Apdu(Zeroizing::new(apdu.to_vec()))),
        }
    }
}

/// One frame on the wire: length prefix and payload.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("vpcd frames carry at most 65535 bytes");
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Read one frame. `after_length` runs between the length and the payload (see the session).
pub async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, after_length: impl FnOnce(&R)) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    after_length(stream);
    let mut payload = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}

/// What the card does with one request from pcscd; `None` for the controls that get no
/// answer. Runs while the key is locked, so a command and its state write are never cut.
pub fn answer(k: &mut VirtualKey, request: Request) -> Option<Vec<u8>> {
    match request {
        Request::PowerOff => {
            k.power_off();
            None
        }
        Request::PowerOn | Request::Reset => {
            k.power_on();
            None
        }
        Request::Atr => Some(k.atr()),
        Request::Apdu(apdu) => {
            // Header and status word only: the body may carry a PIN or a key.
            let header: [u8; 4] = core::array::from_fn(|i| apdu.get(i).copied().unwrap_or(0));
            let reply = k.exchange(&apdu);
            let sw = &reply[reply.len().saturating_sub(2)..];
            tracing::debug!("APDU {:02X?} -> SW {:02X?}, {} bytes", header, sw, reply.len() - sw.len());
            Some(reply)
        }
    }
}

/// What the front-end is doing, for status displays and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// The key is pulled out: no connection to pcscd.
    Removed,
    /// The key is in, waiting for pcscd (not running yet, or restarting).
    Connecting,
    /// pcscd sees the card.
    Connected,
    /// The front-end has stopped.
    Stopped,
}

/// How the front-end is steered while it runs.
#[derive(Debug, Clone)]
pub struct Control {
    /// `true`: key inserted. Flip to `false` to pull it out.
    pub inserted: watch::Receiver<bool>,
    /// Becomes `true` once: finish the current command, disconnect, return.
    pub shutdown: watch::Receiver<bool>,
}

impl Control {
    /// Shutdown asked for, or nobody left who could ask (the controller is gone).
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }
}

/// Retry interval while pcscd is not there.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Serve `key` to the vpcd reader at `addr` until shut down. Reconnects whenever pcscd goes away;
/// while the key is removed it stays disconnected. Reports its state on `state`.
pub async fn serve(key: SharedKey, addr: String, mut control: Control, state: watch::Sender<LinkState>) {
    let label = key.lock().label().to_string();
    let mut backoff = RECONNECT_MIN;
    let mut warned = false;
    loop {
        if control.stopping() {
            break;
        }
        if !*control.inserted.borrow() {
            state.send_replace(LinkState::Removed);
            tokio::select! {
                _ = changed(&mut control.inserted) => continue,
                _ = changed(&mut control.shutdown) => continue,
            }
        }
        state.send_replace(LinkState::Connecting);
        let stream = tokio::select! {
            s = TcpStream::connect(&addr) => s,
            _ = changed(&mut control.inserted) => continue,
            _ = changed(&mut control.shutdown) => continue,
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                if !warned {
                    tracing::warn!(key = %label, %addr, "vpcd not reachable ({e}); is pcscd with vsmartcard-vpcd running? retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = changed(&mut control.inserted) => {}
                    _ = changed(&mut control.shutdown) => {}
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff = RECONNECT_MIN;
        warned = false;
        // A key that has just been plugged in starts unpowered; pcscd powers it.
        with_key(&key, VirtualKey::insert).await;
        with_key(&key, VirtualKey::power_off).await;
        state.send_replace(LinkState::Connected);
        tracing::info!(key = %label, %addr, "key inserted: connected to vpcd");
        let end = session(&key, &mut stream, &mut control).await;
        drop(stream);
        with_key(&key, VirtualKey::remove).await;
        match end {
            SessionEnd::Removed => tracing::info!(key = %label, %addr, "key removed"),
            SessionEnd::Shutdown => tracing::info!(key = %label, %addr, "shutting down: key disconnected"),
            SessionEnd::Lost(e) => tracing::warn!(key = %label, %addr, "lost pcscd ({e}); reconnecting"),
            SessionEnd::PowerLost => {
                tracing::warn!(key = %label, %addr, "the card lost power in a command: out and back in")
            }
        }
    }
    state.send_replace(LinkState::Stopped);
}

enum SessionEnd {
    Removed,
    Shutdown,
    Lost(io::Error),
    /// The card went mute in a command: the connection is dropped and made again at once.
    PowerLost,
}

/// pcscd polls a connected card every few hundred milliseconds; silence this long means the
/// connection sits in vpcd's backlog behind another card on the same port.
const SILENCE_WARNING: Duration = Duration::from_secs(5);

async fn session(key: &SharedKey, stream: &mut TcpStream, control: &mut Control) -> SessionEnd {
    let mut heard = false;
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    loop {
        // Older vpcd (Debian 12's) sends the length and the payload in two writes; under Nagle
        // the payload waits for our ACK of the length, which Linux would delay by 40 ms: ACK now.
        let quickack = |s: &TcpStream| {
            #[cfg(target_os = "linux")]
            let _ = s.set_quickack(true);
            let _ = s;
        };
        // One read per frame, kept across the silence timer: reading is not cancel-safe, and a
        // frame half read when the timer fires must not be lost.
        let frame = {
            let read = read_frame(stream, quickack);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    f = &mut read => break f,
                    _ = changed(&mut control.shutdown) => return SessionEnd::Shutdown,
                    _ = wait_removed(&mut control.inserted) => return SessionEnd::Removed,
                    _ = tokio::time::sleep(SILENCE_WARNING), if !heard => {
                        tracing::warn!(%peer, "pcscd has not spoken to this key for 5 s: is another key served on this port?");
                        heard = true;
                    }
                }
            }
        };
        heard = true;
        let payload = match frame {
            Ok(p) => Zeroizing::new(p),
            Err(e) => return SessionEnd::Lost(e),
        };
        // A frame, once read, is answered before anything else happens: a shutdown never
        // cuts a command (and its state write) in half.
        let reply = match Request::parse(&payload) {
            Ok(request) => with_key(key, move |k| answer(k, request)).await,
            Err(e) => {
                tracing::warn!("ignoring frame from pcscd: {e}");
                None
            }
        };
        if let Some(reply) = reply {
            if reply.is_empty() {
                // The card lost its power in the command (an injected fault): a reader sees a
                // mute card, and vpcd has no word for that; the card leaves and comes back.
                return SessionEnd::PowerLost;
            }
            if let Err(e) = stream.write_all(&encode(&reply)).await {
                return SessionEnd::Lost(e);
            }
        }
    }
}

async fn wait_removed(inserted: &mut watch::Receiver<bool>) {
    while *inserted.borrow_and_update() {
        changed(inserted).await;
    }
}

/// The next change; never, once nobody can send one (a dropped sender must not make a loop spin).
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Run `f` on the key off the async threads: a command may fsync the key's state.
async fn with_key<T: Send + 'static>(key: &SharedKey, f: impl FnOnce(&mut VirtualKey) -> T + Send + 'static) -> T {
    let key = key.clone();
    tokio::task::spawn_blocking(move || f(&mut key.lock())).await.expect("the card never panics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_encode() {
        assert_eq!(Request::parse(&[0]), Ok(Request::PowerOff));
        assert_eq!(Request::parse(&[1]), Ok(Request::PowerOn));
        assert_eq!(Request::parse(&[2]), Ok(Request::Reset));
        assert_eq!(Request::parse(&[4]), Ok(Request::Atr));
        assert_eq!(Request::parse(&[3]), Err(FrameError::UnknownControl(3)));
        assert_eq!(Request::parse(&[]), Err(FrameError::Empty));
        assert_eq!(Request::parse(&[0, 0xA4, 4, 0]), Ok(Request::Apdu(vec![0, 0xA4, 4, 0].into())));
        let verify = Request::parse(b"\x00\x20\x00\x80\x08739184\xFF\xFF").unwrap();
        let shown = format!("{verify:?}");
        assert!(!shown.contains("739184") && !shown.contains("55, 51, 57") && shown.contains("13 bytes"), "{shown}");
        assert_eq!(encode(&[0x90, 0x00]), vec![0, 2, 0x90, 0x00]);
        assert_eq!(encode(&[0u8; 300])[..2], [0x01, 0x2C]);
    }
}

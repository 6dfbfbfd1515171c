//! Why a USB/IP connection ended: the error the server's request handling and an imported
//! device's session both end with, and what counts as a read timeout.

use std::time::Duration;

use proto::usbip::FrameError;

/// Why a connection ended before its request was answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the client closed the connection mid-request")]
    Closed,
    #[error("no request within {0:?}")]
    NoRequest(Duration),
    #[error("idle for {0:?} with nothing pending: detached")]
    Idle(Duration),
    #[error("bad request: {0}")]
    Frame(#[from] FrameError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether an I/O error is a read timeout (the two kinds the platforms use).
pub(super) fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

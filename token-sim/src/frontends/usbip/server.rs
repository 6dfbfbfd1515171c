//! The USB/IP server's connection handling: one request per connection before any device is
//! imported, as `usbip list` and `usbip attach` send them. A bad or truncated frame ends that
//! connection with a log line; nothing a client sends can panic the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use super::wire::{encode_devlist, encode_import, DeviceRecord, FrameError, OpRequest};

/// Why a connection ended before its request was answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("the client closed the connection mid-request")]
    Closed,
    #[error("bad request: {0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a connection asked for, as the log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    DevList { devices: usize },
    ImportRefused { busid: String },
}

/// Read one operation request from `stream` (however the bytes arrive) and answer it with
/// `devices`, the keys exported now.
pub fn answer(stream: &mut TcpStream, devices: &[DeviceRecord]) -> Result<Served, ConnectionError> {
    let mut buf = Vec::new();
    let request = loop {
        match OpRequest::parse(&buf) {
            Ok((request, _)) => break request,
            Err(FrameError::Incomplete { need }) => {
                let mut more = vec![0; need];
                let n = stream.read(&mut more)?;
                if n == 0 {
                    return Err(ConnectionError::Closed);
                }
                buf.extend_from_slice(&more[..n]);
            }
            Err(e) => return Err(e.into()),
        }
    };
    match request {
        OpRequest::DevList => {
            stream.write_all(&encode_devlist(devices))?;
            Ok(Served::DevList { devices: devices.len() })
        }
        OpRequest::Import { busid } => {
            // The device behind an import (CCID on a software USB bus) is not built yet.
            stream.write_all(&encode_import(None))?;
            Ok(Served::ImportRefused { busid })
        }
    }
}

/// Serve `listener` until it fails: each connection on its own thread, answered from
/// `devices()` at the time it comes.
pub fn serve(listener: TcpListener, devices: Arc<dyn Fn() -> Vec<DeviceRecord> + Send + Sync>) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let mut stream = stream?;
        let devices = devices.clone();
        std::thread::spawn(move || {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            match answer(&mut stream, &devices()) {
                Ok(Served::DevList { devices }) => tracing::info!("usbip {peer}: listed {devices} key(s)"),
                Ok(Served::ImportRefused { busid }) => tracing::warn!(
                    "usbip {peer}: import of {busid} refused: attaching needs the CCID device, which ukey does not serve yet"
                ),
                Err(e) => tracing::warn!("usbip {peer}: connection closed: {e}"),
            }
        });
    }
    Ok(())
}

//! How a virtual key is reached from outside this process. In-process use needs no front-end
//! (`VirtualKey` is a `proto::Transport`); `vpcd` makes the key a reader of the OS PC/SC stack;
//! `ccid` makes it a USB CCID device (on a software USB bus in this process), and `usbip`
//! exports such devices to USB/IP clients. A front-end moves bytes: it never interprets an APDU.

pub mod ccid;
#[cfg(feature = "std")]
pub mod usbip;
#[cfg(feature = "vpcd")]
pub mod vpcd;

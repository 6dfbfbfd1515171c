//! The driver over USB CCID: the whole key suite through the card's software USB bus
//! (usb-device and the CCID class on one side, the host's CCID transport on the other), and
//! what is CCID's own: descriptors read and honoured, power cycling the card's security
//! status away, chaining both ways, time extensions for a slow card, aborts.

mod suite;

use std::time::Duration;

use host_driver::ccid::CcidTransport;
use host_driver::{PinOutcome, PinStatus, Piv};
use proto::ccid::{features, Icc, Outcome, Status};
use proto::clock::FixedClock;
use proto::transport::{Transport, TransportError};
use suite::{Maker, NOW};
use token_sim::faults::Fault;
use token_sim::frontends::ccid::bus::HostEnd;
use token_sim::frontends::ccid::device::Plugged;
use token_sim::{KeySpec, SharedKey, VirtualKey};

/// A key driven through CCID over some link, with whatever keeps its device alive.
pub struct Driven<T: Transport> {
    transport: T,
    key: SharedKey,
    plugged: Option<Plugged>,
    addr: String,
}

impl<T: Transport> Transport for Driven<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transport.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.transport.reset()
    }
    fn is_present(&mut self) -> bool {
        self.transport.is_present()
    }
    fn name(&self) -> String {
        self.transport.name()
    }
}

/// A key plugged into the software bus, driven through CCID; unplugged when dropped.
pub type OverCcid = Driven<CcidTransport<HostEnd>>;

fn plug(spec: KeySpec, extension_after: Duration) -> OverCcid {
    let key = SharedKey::new(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap());
    let plugged = Plugged::with_time_extension(key.clone(), extension_after);
    let transport = CcidTransport::open(plugged.host()).unwrap();
    Driven { transport, key, plugged: Some(plugged), addr: String::new() }
}

struct ViaCcid;

impl Maker for ViaCcid {
    type T = OverCcid;
    fn make(&self, spec: KeySpec) -> Piv<OverCcid> {
        Piv::new(plug(spec, Duration::from_millis(500)))
    }
}

key_suite!(ViaCcid);

#[test]
fn the_class_descriptor_is_read_and_the_card_answers_its_own_atr() {
    let mut k = plug(KeySpec { seed: Some(2), ..KeySpec::default() }, Duration::from_millis(500));
    let d = k.transport.interface().descriptor;
    assert_eq!(d.level(), features::LEVEL_EXTENDED_APDU);
    assert_eq!(d.max_message_len, 1034);
    assert_eq!(d.protocols, 2, "T=1");
    assert!(k.transport.name().contains(&k.key.lock().serial().to_string()), "{}", k.transport.name());
    assert_eq!(k.transport.reset().unwrap(), token_sim::piv::card::ATR.to_vec());
    assert_eq!(k.transport.parameters().unwrap().0, 1, "T=1 parameters");
}

#[test]
fn a_power_cycle_ends_the_pin_verification() {
    let mut p = Piv::new(plug(KeySpec { seed: Some(3), ..KeySpec::default() }, Duration::from_millis(500)));
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    assert_eq!(p.pin_status().unwrap(), PinStatus::Verified);
    p.transport().transport.power_off().unwrap();
    assert!(matches!(p.pin_status(), Err(host_driver::PivError::Transport(TransportError::Reset(_)))));
    p.transport().reset().unwrap();
    p.select().unwrap();
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
}

#[test]
fn extended_apdus_longer_than_a_message_are_chained_both_ways() {
    let mut p = Piv::new(plug(KeySpec { seed: Some(4), ..KeySpec::default() }, Duration::from_millis(500)));
    p.authenticate(&host_driver::MgmtKey::default()).unwrap();
    // 3000 bytes in one extended APDU: three XfrBlocks to the reader; read back likewise.
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x0B, 0xB8];
    data.extend(&body);
    let mut apdu = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00];
    apdu.extend((data.len() as u16).to_be_bytes());
    apdu.extend(&data);
    let t = p.transport();
    assert_eq!(t.transmit(&apdu).unwrap(), [0x90, 0x00]);
    let r = t.transmit(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00]).unwrap();
    assert_eq!(&r[r.len() - 2..], [0x90, 0x00]);
    assert!(r.len() > 1034, "longer than one message: {}", r.len());
    assert!(r.windows(body.len()).any(|w| w == &body[..]), "the object came back whole");
}

#[test]
fn a_slow_card_sends_time_extensions_and_still_answers() {
    // The card takes 1.5 s; the host waits 1 s for a reply: only the extensions (every
    // 100 ms) keep it waiting.
    let mut k = plug(KeySpec { seed: Some(5), ..KeySpec::default() }, Duration::from_millis(100));
    k.key.lock().faults().arm(Fault::Slow(Duration::from_millis(1500)));
    k.transport.set_timeout(Duration::from_secs(1));
    let r = k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    assert_eq!(&r[..], [0x63, 0xC3]);
    assert!(k.transport.time_extensions >= 2, "{} time extensions", k.transport.time_extensions);
}

#[test]
fn a_reader_that_does_not_answer_in_time_is_aborted_and_the_next_command_works() {
    // No time extension before 10 s: the host gives up first and aborts.
    let mut k = plug(KeySpec { seed: Some(6), ..KeySpec::default() }, Duration::from_secs(10));
    k.key.lock().faults().arm(Fault::Slow(Duration::from_millis(400)));
    k.transport.set_timeout(Duration::from_millis(100));
    let e = k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap_err();
    assert!(e.to_string().contains("aborted"), "{e}");
    k.key.lock().faults().disarm();
    k.transport.set_timeout(Duration::from_secs(5));
    // The late answer to the aborted command is never taken for this one's.
    std::thread::sleep(Duration::from_millis(500));
    let r = k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap();
    assert_eq!(&r[..], [0x63, 0xC3]);
}

#[test]
fn an_unplugged_key_is_a_removed_card() {
    let mut k = plug(KeySpec { seed: Some(7), ..KeySpec::default() }, Duration::from_millis(500));
    k.plugged.as_ref().unwrap().host().unplug();
    assert!(matches!(k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]), Err(TransportError::Removed(_))));
    assert!(!k.transport.is_present());
}

/// The same suite with the USB/IP protocol between the CCID transport and the device: ukey's
/// USB/IP server on loopback, the driver's user-space USB/IP client.
mod over_usbip {
    use super::*;
    use host_driver::usbip::UsbipLink;
    use std::net::TcpListener;
    use std::sync::Arc;
    use token_sim::frontends::usbip::server::{self, KeyExports};

    pub struct ViaUsbip;

    /// A key exported by a USB/IP server of its own, imported and driven through CCID.
    pub type Imported = Driven<CcidTransport<UsbipLink>>;

    pub fn import(spec: KeySpec) -> Imported {
        let key = SharedKey::new(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let exports = Arc::new(KeyExports::new(vec![key.clone()]));
        std::thread::spawn(move || server::serve(listener, exports, server::Policy::default()));
        let link = UsbipLink::import(&addr, "1-1").unwrap();
        Driven { transport: CcidTransport::open(link).unwrap(), key, plugged: None, addr }
    }

    impl Maker for ViaUsbip {
        type T = Imported;
        fn make(&self, spec: KeySpec) -> Piv<Imported> {
            Piv::new(import(spec))
        }
    }

    use super::suite;
    key_suite!(ViaUsbip);

    #[test]
    fn a_key_is_imported_once_at_a_time_and_a_timed_out_urb_is_unlinked() {
        let mut k = import(KeySpec { seed: Some(8), ..KeySpec::default() });
        assert!(k.transport.name().contains("usbip"), "{}", k.transport.name());
        let again = UsbipLink::import(&k.addr, "1-1").err().expect("attached already");
        assert!(again.to_string().contains("refused"), "{again}");
        assert!(UsbipLink::import(&k.addr, "1-2").is_err(), "no such key");
        // A slow card with no time extension yet: the host's IN URB times out, is unlinked,
        // and the late answer is not taken for the next command's.
        k.key.lock().faults().arm(Fault::Slow(Duration::from_millis(300)));
        k.transport.set_timeout(Duration::from_millis(100));
        assert!(k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]).is_err());
        k.key.lock().faults().disarm();
        k.transport.set_timeout(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(k.transport.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap(), [0x63, 0xC3]);
        // Detached, the key can be imported again.
        drop(k.transport);
        let link = (0..50)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(20));
                UsbipLink::import(&k.addr, "1-1").ok()
            })
            .expect("importable again after the detach");
        drop(link);
    }
}

/// A reader that lies: it answers every XfrBlock itself (the key's own answer is never read),
/// with a time extension for ever or a chained response that never ends.
struct Rogue {
    inner: HostEnd,
    lie: Option<Lie>,
    last: (u8, u8),
}

#[derive(Clone, Copy)]
enum Lie {
    MoreTime,
    EndlessChain { piece: usize },
}

impl proto::usb::UsbLink for Rogue {
    fn control_in(&mut self, setup: proto::usb::Setup) -> Result<Vec<u8>, proto::usb::UsbError> {
        self.inner.control_in(setup)
    }
    fn control_out(&mut self, setup: proto::usb::Setup, data: &[u8]) -> Result<(), proto::usb::UsbError> {
        self.inner.control_out(setup, data)
    }
    fn bulk_out(&mut self, ep: u8, data: &[u8]) -> Result<(), proto::usb::UsbError> {
        // (message type, bSeq) of what the host sent last.
        self.last = (data[0], data[6]);
        self.inner.bulk_out(ep, data)
    }
    fn bulk_in(&mut self, ep: u8, max: usize, timeout: Duration) -> Result<Vec<u8>, proto::usb::UsbError> {
        let (kind, seq) = self.last;
        match self.lie {
            Some(Lie::MoreTime) if kind == proto::ccid::cmd::XFR_BLOCK => {
                let status = Status { icc: Icc::Active, outcome: Outcome::TimeExtension };
                Ok(proto::ccid::reply_header(proto::ccid::reply::DATA_BLOCK, seq, 0, status, 1, 0).to_vec())
            }
            Some(Lie::EndlessChain { piece }) if kind == proto::ccid::cmd::XFR_BLOCK => {
                let status = Status { icc: Icc::Active, outcome: Outcome::Ok };
                let continues = proto::ccid::Chain::Continues as u8;
                let mut r = proto::ccid::reply_header(proto::ccid::reply::DATA_BLOCK, seq, piece, status, 0, continues)
                    .to_vec();
                r.resize(r.len() + piece, 0x55);
                Ok(r)
            }
            _ => self.inner.bulk_in(ep, max, timeout),
        }
    }
    fn name(&self) -> String {
        "rogue reader".into()
    }
}

/// Time extensions are waited through for a bounded time in all, and a chained response is
/// bounded in bytes and in pieces: a reader that never finishes gets an error, not a hang or
/// an ever-growing buffer.
#[test]
fn a_reader_that_never_finishes_is_bounded() {
    for lie in [Lie::MoreTime, Lie::EndlessChain { piece: 1024 }, Lie::EndlessChain { piece: 0 }] {
        let key = SharedKey::new(VirtualKey::in_memory(&KeySpec::default(), &FixedClock(NOW)).unwrap());
        let plugged = Plugged::new(key);
        // Opening powers the card (IccPowerOn, answered honestly); the lie is in XfrBlocks.
        let mut t = CcidTransport::open(Rogue { inner: plugged.host(), lie: Some(lie), last: (0, 0) }).unwrap();
        t.set_max_wait(Duration::from_millis(300));
        let select = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
        let started = std::time::Instant::now();
        let e = t.transmit(&select).unwrap_err();
        let text = e.to_string();
        match lie {
            Lie::MoreTime => {
                assert!(text.contains("more time"), "{text}");
                assert!(t.time_extensions > 0);
            }
            Lie::EndlessChain { .. } => assert!(text.contains("chained response past"), "{text}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "bounded in time too: {:?}", started.elapsed());
    }
}

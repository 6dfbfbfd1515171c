//! The CCID class on usb-device: one interface of class 0x0B with its 54-byte class
//! descriptor, a bulk-OUT and a bulk-IN endpoint carrying the messages, an interrupt-IN
//! endpoint for slot changes, and the class requests on the control pipe. Packets are put
//! together into messages here; what the messages mean is the [`Slot`]'s business.

use heapless::Vec;
use proto::ccid::{self, features, request, HEADER};
use usb_device::class_prelude::*;
use usb_device::control::{Recipient, RequestType};

use super::slot::Slot;
use super::MAX_MESSAGE;

/// Full-speed bulk packets.
pub const PACKET: usize = 64;

/// 3.58 MHz and 9600 bps, as the ICCD specification fixes them for tokens (legacy values).
const CLOCK_KHZ: u32 = 3580;
const DATA_RATE: u32 = 9600;

/// What the reader says of itself: one slot, T=1, extended APDU level with every parameter
/// automatic (a host sends no PPS and no SetParameters), messages of up to [`MAX_MESSAGE`].
pub const DESCRIPTOR: ccid::ClassDescriptor = ccid::ClassDescriptor {
    bcd_ccid: 0x0110,
    max_slot_index: 0,
    // 5 V, 3 V and 1.8 V: whatever the host picks.
    voltage_support: 0x07,
    // T=1 only.
    protocols: 0x0000_0002,
    default_clock: CLOCK_KHZ,
    maximum_clock: CLOCK_KHZ,
    num_clocks: 0,
    data_rate: DATA_RATE,
    max_data_rate: DATA_RATE,
    num_data_rates: 0,
    max_ifsd: 254,
    synch_protocols: 0,
    mechanical: 0,
    features: features::AUTO_CONFIG_FROM_ATR
        | features::AUTO_ACTIVATION
        | features::AUTO_VOLTAGE
        | features::AUTO_CLOCK
        | features::AUTO_BAUD
        | features::AUTO_PARAMETERS
        | features::AUTO_PPS
        | features::LEVEL_EXTENDED_APDU,
    max_message_len: MAX_MESSAGE as u32,
    // Echo the command's class byte in GET RESPONSE / ENVELOPE (APDU level).
    class_get_response: 0xFF,
    class_envelope: 0xFF,
    lcd_layout: 0,
    pin_support: 0,
    max_busy_slots: 1,
};

/// NotifySlotChange: slot 0 holds a card, and that changed (the token was just plugged).
const SLOT_CHANGED: [u8; 2] = [ccid::reply::NOTIFY_SLOT_CHANGE, 0b11];

pub struct CcidClass<'a, B: UsbBus> {
    interface: InterfaceNumber,
    name: StringIndex,
    bulk_out: EndpointOut<'a, B>,
    bulk_in: EndpointIn<'a, B>,
    interrupt: EndpointIn<'a, B>,
    /// The message arriving on bulk OUT.
    rx: Vec<u8, MAX_MESSAGE>,
    /// Bytes still to come of a message too long to keep, and its header (refused whole).
    discard: Option<(usize, [u8; HEADER])>,
    /// The reply going out on bulk IN, and how much of it the bus has taken.
    tx: Vec<u8, MAX_MESSAGE>,
    tx_sent: usize,
    tx_busy: bool,
    /// A zero-length packet still owed: the reply was a multiple of the packet size.
    tx_zlp: bool,
    notify: bool,
    pub slot: Slot,
}

impl<'a, B: UsbBus> CcidClass<'a, B> {
    pub fn new(alloc: &'a UsbBusAllocator<B>) -> Self {
        CcidClass {
            interface: alloc.interface(),
            name: alloc.string(),
            bulk_out: alloc.bulk(PACKET as u16),
            bulk_in: alloc.bulk(PACKET as u16),
            interrupt: alloc.interrupt(8, 32),
            rx: Vec::new(),
            discard: None,
            tx: Vec::new(),
            tx_sent: 0,
            tx_busy: false,
            tx_zlp: false,
            notify: true,
            slot: Slot::new(),
        }
    }

    /// Endpoint addresses, for a host that wants to know (bulk OUT, bulk IN, interrupt IN).
    pub fn endpoints(&self) -> (u8, u8, u8) {
        (self.bulk_out.address().into(), self.bulk_in.address().into(), self.interrupt.address().into())
    }

    /// Move what can move: the next reply out, packet by packet, and the slot notification.
    pub fn pump(&mut self) {
        if self.notify && self.interrupt.write(&SLOT_CHANGED).is_ok() {
            self.notify = false;
        }
        loop {
            if !self.tx_busy {
                if !self.slot.take_reply(&mut self.tx) {
                    return;
                }
                self.tx_busy = true;
                self.tx_sent = 0;
                self.tx_zlp = self.tx.len().is_multiple_of(PACKET);
            }
            let end = (self.tx_sent + PACKET).min(self.tx.len());
            if self.tx_sent < self.tx.len() {
                match self.bulk_in.write(&self.tx[self.tx_sent..end]) {
                    Ok(n) => self.tx_sent += n,
                    Err(_) => return,
                }
            } else if self.tx_zlp {
                match self.bulk_in.write(&[]) {
                    Ok(_) => self.tx_zlp = false,
                    Err(_) => return,
                }
            }
            if self.tx_sent >= self.tx.len() && !self.tx_zlp {
                self.tx_busy = false;
            }
        }
    }

    fn packet_in(&mut self, packet: &[u8]) {
        let short = packet.len() < PACKET;
        if let Some((left, header)) = &mut self.discard {
            *left = left.saturating_sub(packet.len());
            if *left == 0 || short {
                let header = *header;
                self.discard = None;
                // Refused whole: the header alone reads as a bad length.
                self.slot.command(&header);
            }
            return;
        }
        if self.rx.extend_from_slice(packet).is_err() {
            self.rx.clear();
            return;
        }
        let Ok(h) = ccid::Header::parse(&self.rx) else {
            if short {
                // Not even a header, and the transfer is over.
                self.rx.clear();
            }
            return;
        };
        let whole = h.message_len();
        if whole > MAX_MESSAGE {
            let mut header = [0u8; HEADER];
            header.copy_from_slice(&self.rx[..HEADER]);
            let left = whole - self.rx.len();
            self.rx.clear();
            if left == 0 || short {
                self.slot.command(&header);
            } else {
                self.discard = Some((left, header));
            }
            return;
        }
        if self.rx.len() >= whole || short {
            // A short packet ends the transfer: what came is the message, whole or not.
            let end = whole.min(self.rx.len());
            self.slot.command(&self.rx[..end]);
            // The message may carry a PIN or a key: the slot has its copy.
            zeroize::Zeroize::zeroize(&mut self.rx[..]);
            self.rx.clear();
        }
    }
}

impl<B: UsbBus> UsbClass<B> for CcidClass<'_, B> {
    fn get_configuration_descriptors(&self, w: &mut DescriptorWriter) -> usb_device::Result<()> {
        w.interface_alt(self.interface, 0, ccid::CLASS, 0, 0, Some(self.name))?;
        w.write(ccid::DESCRIPTOR_TYPE, &DESCRIPTOR.to_bytes()[2..])?;
        w.endpoint(&self.bulk_out)?;
        w.endpoint(&self.bulk_in)?;
        w.endpoint(&self.interrupt)?;
        Ok(())
    }

    fn get_string(&self, index: StringIndex, _lang: LangID) -> Option<&str> {
        (index == self.name).then_some("ukey CCID")
    }

    fn reset(&mut self) {
        self.rx.clear();
        self.discard = None;
        self.tx.clear();
        self.tx_busy = false;
        self.tx_zlp = false;
        self.notify = true;
        self.slot.usb_reset();
    }

    fn poll(&mut self) {
        self.pump();
    }

    fn endpoint_out(&mut self, addr: EndpointAddress) {
        if addr != self.bulk_out.address() {
            return;
        }
        let mut packet = [0u8; PACKET];
        if let Ok(n) = self.bulk_out.read(&mut packet) {
            self.packet_in(&packet[..n]);
        }
        self.pump();
    }

    fn endpoint_in_complete(&mut self, addr: EndpointAddress) {
        if addr == self.bulk_in.address() {
            self.pump();
        }
    }

    fn control_in(&mut self, xfer: ControlIn<B>) {
        let req = *xfer.request();
        if (req.request_type, req.recipient) != (RequestType::Class, Recipient::Interface)
            || req.index != u16::from(u8::from(self.interface))
        {
            return;
        }
        let _ = match req.request {
            request::GET_CLOCK_FREQUENCIES => xfer.accept_with(&CLOCK_KHZ.to_le_bytes()),
            request::GET_DATA_RATES => xfer.accept_with(&DATA_RATE.to_le_bytes()),
            _ => xfer.reject(),
        };
    }

    fn control_out(&mut self, xfer: ControlOut<B>) {
        let req = *xfer.request();
        if (req.request_type, req.recipient) != (RequestType::Class, Recipient::Interface)
            || req.index != u16::from(u8::from(self.interface))
        {
            return;
        }
        if req.request == request::ABORT {
            // wValue: bSlot in the low byte, bSeq in the high byte (§5.3.1).
            let [slot, seq] = req.value.to_le_bytes();
            self.slot.control_abort(slot, seq);
            let _ = xfer.accept();
            self.pump();
        } else {
            let _ = xfer.reject();
        }
    }
}

//! A USB bus in software: usb-device's [`UsbBus`] for the device side, and a host's end
//! ([`HostEnd`], a [`proto::usb::UsbLink`]) that does what a host controller does — SETUP,
//! DATA and STATUS stages on endpoint 0, bulk and interrupt transfers of packets — in the
//! same process, with no kernel. One lock and one condition variable: the device side waits
//! for the host's packets, the host side for the device's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto::usb::{Setup, UsbError as LinkError, UsbLink};
use usb_device::bus::PollResult;
use usb_device::endpoint::{EndpointAddress, EndpointType};
use usb_device::{UsbDirection, UsbError};
use zeroize::Zeroizing;

const ENDPOINTS: usize = 16;

/// How long the host waits for a control transfer's answer: the device answers those at once.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

type Packet = Zeroizing<Vec<u8>>;

#[derive(Default)]
struct OutEp {
    max: u16,
    /// Packets from the host, oldest first; `true` marks a SETUP packet.
    queue: VecDeque<(bool, Packet)>,
    stalled: bool,
}

#[derive(Default)]
struct InEp {
    max: u16,
    kind: Option<EndpointType>,
    /// The packet the device wrote, until the host takes it.
    packet: Option<Packet>,
    stalled: bool,
}

#[derive(Default)]
pub(super) struct BusState {
    out: [Option<OutEp>; ENDPOINTS],
    inp: [Option<InEp>; ENDPOINTS],
    reset: bool,
    in_complete: u16,
    pub(super) address: u8,
    /// The device is unplugged (or its thread ended): every host call fails.
    pub(super) gone: bool,
    /// The host wants the device to stop.
    pub(super) stop: bool,
    /// Work the device side put down for itself (the card's answers, from its worker).
    pub(super) wake: bool,
}

impl BusState {
    /// Whether the device side has something to do.
    pub(super) fn device_due(&self) -> bool {
        self.reset
            || self.in_complete != 0
            || self.wake
            || self.stop
            || self.out.iter().flatten().any(|e| !e.queue.is_empty())
    }
}

#[derive(Default)]
pub struct Shared {
    state: Mutex<BusState>,
    changed: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, BusState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change the state and wake whoever waits.
    pub(super) fn update<R>(&self, f: impl FnOnce(&mut BusState) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    /// Wait until `ready` holds or `deadline` passes; the guard either way.
    pub(super) fn wait_until(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&BusState) -> bool,
    ) -> MutexGuard<'_, BusState> {
        let mut g = self.lock();
        while !ready(&g) {
            match deadline {
                None => g = self.changed.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    g = self.changed.wait_timeout(g, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
        g
    }
}

/// The device's side of the bus, for usb-device.
pub struct SoftBus {
    shared: Arc<Shared>,
}

impl SoftBus {
    pub fn new(shared: Arc<Shared>) -> SoftBus {
        SoftBus { shared }
    }
}

impl usb_device::bus::UsbBus for SoftBus {
    fn alloc_ep(
        &mut self,
        dir: UsbDirection,
        addr: Option<EndpointAddress>,
        kind: EndpointType,
        max: u16,
        _interval: u8,
    ) -> usb_device::Result<EndpointAddress> {
        let mut st = self.shared.lock();
        let taken = |st: &BusState, i: usize| match dir {
            UsbDirection::Out => st.out[i].is_some(),
            UsbDirection::In => st.inp[i].is_some(),
        };
        let index = match addr {
            Some(a) if taken(&st, a.index()) => return Err(UsbError::InvalidEndpoint),
            Some(a) => a.index(),
            None => (1..ENDPOINTS).find(|&i| !taken(&st, i)).ok_or(UsbError::EndpointOverflow)?,
        };
        match dir {
            UsbDirection::Out => st.out[index] = Some(OutEp { max, ..OutEp::default() }),
            UsbDirection::In => st.inp[index] = Some(InEp { max, kind: Some(kind), ..InEp::default() }),
        }
        Ok(EndpointAddress::from_parts(index, dir))
    }

    fn enable(&mut self) {
        self.shared.update(|st| st.reset = true);
    }

    fn reset(&self) {
        self.shared.update(|st| {
            for e in st.out.iter_mut().flatten() {
                e.queue.retain(|(setup, _)| *setup);
                e.stalled = false;
            }
            for e in st.inp.iter_mut().flatten() {
                e.packet = None;
                e.stalled = false;
            }
            st.in_complete = 0;
            st.address = 0;
        });
    }

    fn set_device_address(&self, addr: u8) {
        self.shared.update(|st| st.address = addr);
    }

    fn write(&self, ep: EndpointAddress, buf: &[u8]) -> usb_device::Result<usize> {
        self.shared.update(|st| {
            let e = st.inp[ep.index()].as_mut().ok_or(UsbError::InvalidEndpoint)?;
            if e.packet.is_some() {
                return Err(UsbError::WouldBlock);
            }
            if buf.len() > e.max as usize {
                return Err(UsbError::BufferOverflow);
            }
            e.packet = Some(Zeroizing::new(buf.to_vec()));
            Ok(buf.len())
        })
    }

    fn read(&self, ep: EndpointAddress, buf: &mut [u8]) -> usb_device::Result<usize> {
        self.shared.update(|st| {
            let e = st.out[ep.index()].as_mut().ok_or(UsbError::InvalidEndpoint)?;
            let Some((_, p)) = e.queue.front() else { return Err(UsbError::WouldBlock) };
            if p.len() > buf.len() {
                return Err(UsbError::BufferOverflow);
            }
            let n = p.len();
            buf[..n].copy_from_slice(p);
            e.queue.pop_front();
            Ok(n)
        })
    }

    fn set_stalled(&self, ep: EndpointAddress, stalled: bool) {
        self.shared.update(|st| match ep.direction() {
            UsbDirection::Out => {
                if let Some(e) = st.out[ep.index()].as_mut() {
                    e.stalled = stalled;
                }
            }
            UsbDirection::In => {
                if let Some(e) = st.inp[ep.index()].as_mut() {
                    e.stalled = stalled;
                }
            }
        });
    }

    fn is_stalled(&self, ep: EndpointAddress) -> bool {
        let st = self.shared.lock();
        match ep.direction() {
            UsbDirection::Out => st.out[ep.index()].as_ref().is_some_and(|e| e.stalled),
            UsbDirection::In => st.inp[ep.index()].as_ref().is_some_and(|e| e.stalled),
        }
    }

    fn suspend(&self) {}

    fn resume(&self) {}

    fn poll(&self) -> PollResult {
        let mut st = self.shared.lock();
        st.wake = false;
        if std::mem::take(&mut st.reset) {
            return PollResult::Reset;
        }
        let (mut ep_out, mut ep_setup) = (0u16, 0u16);
        for (i, e) in st.out.iter().enumerate() {
            if let Some((setup, _)) = e.as_ref().and_then(|e| e.queue.front()) {
                if *setup {
                    ep_setup |= 1 << i;
                } else {
                    ep_out |= 1 << i;
                }
            }
        }
        let ep_in_complete = std::mem::take(&mut st.in_complete);
        // Always Data, even empty: usb-device polls its classes only then, and the CCID class
        // sends the card's answers from its poll.
        PollResult::Data { ep_out, ep_in_complete, ep_setup }
    }
}

/// The host's end of the bus.
#[derive(Clone)]
pub struct HostEnd {
    shared: Arc<Shared>,
    name: String,
}

impl HostEnd {
    pub fn new(shared: Arc<Shared>, name: String) -> HostEnd {
        HostEnd { shared, name }
    }

    fn send(&self, ep: usize, setup: bool, data: &[u8]) -> Result<(), LinkError> {
        self.shared.update(|st| {
            if st.gone {
                return Err(LinkError::Disconnected);
            }
            let e = st.out[ep].as_mut().ok_or_else(|| LinkError::Io(format!("no OUT endpoint {ep}")))?;
            if setup {
                // A SETUP clears a halted control pipe, as on a real bus.
                e.stalled = false;
                if let Some(i) = st.inp[0].as_mut() {
                    i.stalled = false;
                    i.packet = None;
                }
            } else if e.stalled {
                return Err(LinkError::Stall);
            }
            let max = st.out[ep].as_ref().map_or(64, |e| e.max.max(1) as usize);
            let e = st.out[ep].as_mut().expect("checked above");
            if data.is_empty() {
                e.queue.push_back((setup, Zeroizing::new(Vec::new())));
            }
            for chunk in data.chunks(if setup { data.len().max(1) } else { max }) {
                e.queue.push_back((setup, Zeroizing::new(chunk.to_vec())));
            }
            Ok(())
        })
    }

    /// One IN packet from endpoint `ep`, with its endpoint's packet size; `None` when
    /// `deadline` passed or `cancelled` was set first.
    fn take(
        &self,
        ep: usize,
        deadline: Option<Instant>,
        cancelled: Option<&AtomicBool>,
    ) -> Result<Option<(Packet, usize)>, LinkError> {
        let mut st = self.shared.wait_until(deadline, |st| {
            st.gone
                || cancelled.is_some_and(|c| c.load(Ordering::SeqCst))
                || st.inp[ep].as_ref().is_none_or(|e| e.packet.is_some() || e.stalled)
        });
        if st.gone {
            return Err(LinkError::Disconnected);
        }
        let e = st.inp[ep].as_mut().ok_or_else(|| LinkError::Io(format!("no IN endpoint {ep}")))?;
        if e.stalled {
            return Err(LinkError::Stall);
        }
        let max = e.max as usize;
        let Some(p) = e.packet.take() else { return Ok(None) };
        st.in_complete |= 1 << ep;
        drop(st);
        self.shared.changed.notify_all();
        Ok(Some((p, max)))
    }

    /// One IN transfer of up to `max` bytes, ending at a short packet. `None` when `deadline`
    /// passed or `cancelled` was set before anything came; once a packet is taken the
    /// transfer is finished, cancelled or not.
    fn transfer_in(
        &self,
        endpoint: u8,
        max: usize,
        deadline: Option<Instant>,
        cancelled: Option<&AtomicBool>,
    ) -> Result<Option<Vec<u8>>, LinkError> {
        let ep = (endpoint & 0x0F) as usize;
        let mut data = Vec::new();
        loop {
            let cancel = if data.is_empty() { cancelled } else { None };
            let Some((p, packet)) = self.take(ep, deadline, cancel)? else {
                if data.is_empty() {
                    return Ok(None);
                }
                return Err(LinkError::Io("a transfer stopped in the middle".into()));
            };
            data.extend_from_slice(&p);
            if p.len() < packet || data.len() >= max {
                return Ok(Some(data));
            }
        }
    }

    /// One IN transfer like [`UsbLink::bulk_in`], with no deadline: it waits until the device
    /// sends, or `cancelled` is set (then `None`; call [`HostEnd::poke`] after setting it).
    /// Once a packet is taken the transfer is finished, cancelled or not.
    pub fn bulk_in_unless(
        &self,
        endpoint: u8,
        max: usize,
        cancelled: &AtomicBool,
    ) -> Result<Option<Vec<u8>>, LinkError> {
        self.transfer_in(endpoint, max, None, Some(cancelled))
    }

    /// Wake every waiter to look at its conditions again (after a cancellation).
    pub fn poke(&self) {
        // Under the lock: a waiter between its check and its wait cannot miss this.
        self.shared.update(|_| ());
    }

    /// Whether the IN endpoint `ep` is an interrupt endpoint.
    pub fn is_interrupt(&self, ep: u8) -> bool {
        let st = self.shared.lock();
        st.inp[(ep & 0x0F) as usize].as_ref().is_some_and(|e| e.kind == Some(EndpointType::Interrupt))
    }

    /// The address the host gave the device (0 until SET_ADDRESS).
    pub fn address(&self) -> u8 {
        self.shared.lock().address
    }

    /// Pull the device out: every transfer in flight or to come fails.
    pub fn unplug(&self) {
        self.shared.update(|st| {
            st.gone = true;
            st.stop = true;
        });
    }
}

impl UsbLink for HostEnd {
    fn control_in(&mut self, setup: Setup) -> Result<Vec<u8>, LinkError> {
        self.send(0, true, &setup.to_bytes())?;
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let mut data = Vec::new();
        while data.len() < setup.length as usize {
            let (p, max) = self.take(0, Some(deadline), None)?.ok_or(LinkError::Timeout)?;
            data.extend_from_slice(&p);
            if p.len() < max {
                break;
            }
        }
        // STATUS stage: a zero-length OUT.
        self.send(0, false, &[])?;
        Ok(data)
    }

    /// Data that is not the length the SETUP announces stalls before anything is sent: the
    /// device's control pipe never sees a DATA stage that disagrees with its SETUP (more than
    /// wLength once wedged endpoint 0 of usb-device).
    fn control_out(&mut self, setup: Setup, data: &[u8]) -> Result<(), LinkError> {
        if data.len() != setup.length as usize {
            return Err(LinkError::Stall);
        }
        self.send(0, true, &setup.to_bytes())?;
        if !data.is_empty() {
            self.send(0, false, data)?;
        }
        // STATUS stage: the device's zero-length IN.
        let (p, _) = self.take(0, Some(Instant::now() + CONTROL_TIMEOUT), None)?.ok_or(LinkError::Timeout)?;
        if !p.is_empty() {
            return Err(LinkError::Io(format!("a status stage of {} bytes", p.len())));
        }
        Ok(())
    }

    /// Completes once the device has taken every packet, as a host controller completes an
    /// OUT transfer when its packets are acknowledged: a host that sends faster than the device
    /// reads is held back, never queued without bound. What the device has not taken by the
    /// deadline is dropped with the transfer.
    fn bulk_out(&mut self, endpoint: u8, data: &[u8]) -> Result<(), LinkError> {
        let ep = (endpoint & 0x0F) as usize;
        self.send(ep, false, data)?;
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        let mut st = self.shared.wait_until(Some(deadline), |st| {
            st.gone || st.out[ep].as_ref().is_none_or(|e| e.stalled || e.queue.is_empty())
        });
        if st.gone {
            return Err(LinkError::Disconnected);
        }
        let Some(e) = st.out[ep].as_mut() else { return Err(LinkError::Disconnected) };
        if e.stalled {
            e.queue.clear();
            return Err(LinkError::Stall);
        }
        if !e.queue.is_empty() {
            e.queue.clear();
            return Err(LinkError::Timeout);
        }
        Ok(())
    }

    fn bulk_in(&mut self, endpoint: u8, max: usize, timeout: Duration) -> Result<Vec<u8>, LinkError> {
        self.transfer_in(endpoint, max, Some(Instant::now() + timeout), None)?.ok_or(LinkError::Timeout)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

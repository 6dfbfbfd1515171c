//! A virtual key plugged into the software bus as a USB CCID token: a device thread runs
//! usb-device with the CCID class, a worker thread runs the card, so the device keeps
//! answering (time extensions, slot status) while the card computes, as a token's USB
//! controller does while its secure element works.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::transport::Transport;
use usb_device::bus::UsbBusAllocator;
use usb_device::device::{StringDescriptors, UsbDeviceBuilder, UsbVidPid};
use zeroize::Zeroizing;

use super::bus::{HostEnd, Shared, SoftBus};
use super::class::CcidClass;
use super::slot::{Done, Work};
use super::{DEVICE_RELEASE, PRODUCT_ID, VENDOR_ID};
use crate::SharedKey;

/// How long the card may compute before the device asks the host for more time, and then
/// again each time this passes.
pub const TIME_EXTENSION_AFTER: Duration = Duration::from_millis(500);

enum Job {
    PowerOn,
    PowerOff,
    Apdu(Zeroizing<Vec<u8>>),
}

enum Answer {
    Atr(Vec<u8>),
    PoweredOff,
    Response(Zeroizing<Vec<u8>>),
    Mute,
    Absent,
}

/// A key on the software bus. Dropping it unplugs the key.
pub struct Plugged {
    host: HostEnd,
    device: Option<JoinHandle<()>>,
}

impl Plugged {
    /// Plug `key` in: enumeration is the host's business (see host-driver's CCID transport).
    pub fn new(key: SharedKey) -> Plugged {
        Plugged::with_time_extension(key, TIME_EXTENSION_AFTER)
    }

    pub fn with_time_extension(key: SharedKey, after: Duration) -> Plugged {
        let shared = Arc::new(Shared::default());
        let serial = key.lock().serial().to_string();
        let host = HostEnd::new(shared.clone(), format!("ukey {serial} on the software USB bus"));
        let (ready_tx, ready) = mpsc::channel();
        let device = std::thread::Builder::new()
            .name(format!("ccid-{serial}"))
            .spawn(move || run(shared, key, serial, after, ready_tx))
            .expect("spawning the CCID device thread");
        // Plugged in means on the bus: endpoints allocated, ready to enumerate.
        let _ = ready.recv();
        Plugged { host, device: Some(device) }
    }

    /// The host's end of the bus: give it to host-driver's `CcidTransport`.
    pub fn host(&self) -> HostEnd {
        self.host.clone()
    }
}

impl Drop for Plugged {
    fn drop(&mut self) {
        self.host.unplug();
        if let Some(t) = self.device.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: Arc<Shared>, key: SharedKey, serial: String, after: Duration, ready: mpsc::Sender<()>) {
    let alloc = UsbBusAllocator::new(SoftBus::new(shared.clone()));
    let mut class = CcidClass::new(&alloc);
    let strings = [StringDescriptors::default().manufacturer("ukey").product("ukey").serial_number(&serial)];
    let mut device = UsbDeviceBuilder::new(&alloc, UsbVidPid(VENDOR_ID, PRODUCT_ID))
        .strings(&strings)
        .expect("one language")
        .max_packet_size_0(64)
        .expect("a valid EP0 size")
        .device_release(DEVICE_RELEASE)
        .build();
    let _ = ready.send(());

    let (jobs, job_rx) = mpsc::channel::<(u32, Job)>();
    let (answer_tx, answers) = mpsc::channel::<(u32, Answer)>();
    let worker_shared = shared.clone();
    let worker = std::thread::spawn(move || {
        for (id, job) in job_rx {
            let answer = card(&key, job);
            if answer_tx.send((id, answer)).is_err() {
                return;
            }
            worker_shared.update(|st| st.wake = true);
        }
    });

    let mut working_since: Option<Instant> = None;
    loop {
        let deadline = working_since.map(|t| t + after);
        let stop = {
            let g = shared.wait_until(deadline, |st| st.device_due());
            g.stop
        };
        if stop {
            break;
        }
        device.poll(&mut [&mut class]);
        for (id, answer) in answers.try_iter() {
            let done = match &answer {
                Answer::Atr(a) => Done::Atr(a),
                Answer::PoweredOff => Done::PoweredOff,
                Answer::Response(r) => Done::Response(r),
                Answer::Mute => Done::Mute,
                Answer::Absent => Done::Absent,
            };
            class.slot.finish(id, done);
            working_since = None;
        }
        while let Some((id, work)) = class.slot.pending_work() {
            let job = match work {
                Work::PowerOn => Job::PowerOn,
                Work::PowerOff => Job::PowerOff,
                Work::Apdu(a) => Job::Apdu(Zeroizing::new(a.to_vec())),
            };
            let _ = jobs.send((id, job));
            working_since = Some(Instant::now());
        }
        if let Some(t) = working_since {
            if t.elapsed() >= after && class.slot.is_working() && class.slot.time_extension() {
                working_since = Some(Instant::now());
            }
        }
        class.pump();
    }
    drop(jobs);
    let _ = worker.join();
    shared.update(|st| st.gone = true);
}

/// What the card makes of a job: the virtual key as its reader powers and feeds it.
fn card(key: &SharedKey, job: Job) -> Answer {
    let mut k = key.lock();
    if !k.is_present() {
        return Answer::Absent;
    }
    match job {
        Job::PowerOn => Answer::Atr(k.power_on()),
        Job::PowerOff => {
            k.power_off();
            Answer::PoweredOff
        }
        Job::Apdu(apdu) => {
            let r = k.exchange(&apdu);
            if r.len() < 2 {
                Answer::Mute
            } else {
                Answer::Response(Zeroizing::new(r))
            }
        }
    }
}

//! The ISO 7816-4 layer of the card: power, command chaining in, GET RESPONSE out. It cuts
//! and joins bytes; the meaning of a command is left to `command` and `exec`.

use proto::apdu::CommandApdu;
use proto::piv::ins;
use proto::tlv::Sink;
use proto::Sw;
use rand_core::CryptoRngCore;

use super::command::Command;
use super::exec::PivApp;
use super::reply::{Reply, MAX_REPLY};
use super::state::PersistentState;
use super::storage::{Storage, StorageError};

/// Contact, T=1 ATR. Historical bytes: category 80, card capabilities, issuer data "ukeyPIV".
/// No "Yubikey" in it (OpenSC would switch drivers) and not the `3B 8x 80 01` contactless form.
pub const ATR: [u8; 23] = atr();

const fn atr() -> [u8; 23] {
    let mut a = [
        0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, b'u', b'k', b'e',
        b'y', b'P', b'I', b'V', 0x00,
    ];
    // TCK: XOR of every byte from T0 on.
    let mut tck = 0u8;
    let mut i = 1;
    while i < 22 {
        tck ^= a[i];
        i += 1;
    }
    a[22] = tck;
    a
}

/// Largest command a chain may build (a ~4 KB certificate in PUT DATA plus headers).
pub const MAX_CHAIN: usize = MAX_REPLY + 64;

/// One response APDU: data plus SW1 SW2.
pub type Response = heapless::Vec<u8, { MAX_REPLY + 2 }>;

#[derive(Default)]
struct Chain {
    header: Option<[u8; 3]>,
    data: super::buf::Buf<MAX_CHAIN>,
    /// The PIN-always grant the chain's first APDU took: a chained command is one command.
    pin_always: bool,
}

#[derive(Default)]
struct Pending {
    data: Reply,
    pos: usize,
}

impl Pending {
    fn clear(&mut self) {
        self.data.clear();
        self.pos = 0;
    }
    /// Up to `le` more bytes, then 9000 or 61xx.
    fn next(&mut self, le: usize, out: &mut Response, final_sw: Sw) {
        let rest = &self.data[self.pos..];
        let n = rest.len().min(le);
        let _ = out.put(&rest[..n]);
        self.pos += n;
        let left = self.data.len() - self.pos;
        let sw = if left > 0 { Sw::more_data(left) } else { final_sw };
        if left == 0 {
            self.clear();
        }
        let _ = out.put(&sw.to_bytes());
    }
}

/// A PIV card: the application plus its transport-level state.
pub struct Card<S, R> {
    app: PivApp<S, R>,
    chain: Chain,
    pending: Pending,
    powered: bool,
}

impl<S: Storage, R: CryptoRngCore> Card<S, R> {
    /// A card holding `state`, powered on with PIV selected (as OpenSC expects).
    pub fn new(state: PersistentState, storage: S, rng: R) -> Self {
        // States from files are validated on load; one built in code must be as sound.
        debug_assert!(state.validate().is_ok(), "a card runs only valid states: {:?}", state.validate());
        Card {
            app: PivApp::new(state, storage, rng),
            chain: Chain::default(),
            pending: Pending::default(),
            powered: true,
        }
    }

    pub fn state(&self) -> &PersistentState {
        &self.app.state
    }

    /// Provision the card directly (scenarios, factory), persisting the result.
    /// Not reachable through any APDU.
    pub fn update_state<X>(&mut self, f: impl FnOnce(&mut PersistentState, &mut R) -> X) -> Result<X, StorageError> {
        self.app.update(f)
    }

    pub fn storage(&self) -> &S {
        self.app.storage()
    }

    /// The storage, for the simulator's fault injection (which sits in front of it).
    pub fn storage_mut(&mut self) -> &mut S {
        self.app.storage_mut()
    }

    /// Power was lost mid-command: the card comes back unpowered, running `state` — what
    /// its storage holds after the loss. Not reachable through any APDU.
    pub fn reboot_from(&mut self, state: PersistentState) {
        debug_assert!(state.validate().is_ok(), "storage holds only valid states");
        self.power_off();
        self.app.reboot(state);
    }

    pub fn is_faulted(&self) -> bool {
        self.app.is_faulted()
    }

    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Cold or warm reset: security status, chains and pending output are gone.
    pub fn reset(&mut self) -> [u8; 23] {
        self.app.clear_session();
        self.chain = Chain::default();
        self.pending.clear();
        self.powered = true;
        ATR
    }

    pub fn power_off(&mut self) {
        self.reset();
        self.powered = false;
    }

    /// Process one command APDU. Always answers with at least a status word.
    pub fn transmit(&mut self, bytes: &[u8]) -> Response {
        // A PIN-always grant covers exactly the next command, whatever it is: taken before
        // anything can be refused, so no rejected APDU in between can keep it alive.
        let pin_always = self.app.take_pin_always();
        // Likewise a chain goes on only with its next piece (ISO 7816-4): taken out here, it is
        // put back only by a chained APDU of the same command; anything else, refused or not,
        // abandons it (with the grant its first piece took).
        let mut chain = core::mem::take(&mut self.chain);
        let mut out = Response::new();
        if !self.powered {
            // A card without power says nothing a host could read as success.
            let _ = out.put(&Sw::CONDITIONS_NOT_SATISFIED.to_bytes());
            return out;
        }
        let apdu = match CommandApdu::parse(bytes) {
            Ok(a) => a,
            Err(_) => return sw_only(Sw::WRONG_LENGTH),
        };
        if apdu.cla & !proto::apdu::CLA_CHAINING != 0 {
            let sw = if apdu.cla & 0x0C != 0 && apdu.cla & 0x80 == 0 {
                Sw::SECURE_MESSAGING_NOT_SUPPORTED
            } else {
                Sw::CLA_NOT_SUPPORTED
            };
            return sw_only(sw);
        }
        if apdu.ins == ins::GET_RESPONSE {
            if (apdu.p1, apdu.p2) != (0, 0) {
                return sw_only(Sw::INCORRECT_P1P2);
            }
            if self.pending.data.is_empty() {
                return sw_only(Sw::CONDITIONS_NOT_SATISFIED);
            }
            self.pending.next(le_of(&apdu), &mut out, Sw::OK);
            return out;
        }
        // Any other command abandons output still waiting for GET RESPONSE.
        self.pending.clear();

        let header = [apdu.ins, apdu.p1, apdu.p2];
        if chain.header.is_some_and(|h| h != header) {
            // Another command in the middle of a chain discards the chain.
            chain = Chain::default();
        }
        if apdu.is_chained() {
            if chain.header.is_none() {
                chain.pin_always = pin_always;
            }
            chain.header = Some(header);
            if chain.data.extend_from_slice(apdu.data).is_err() {
                return sw_only(Sw::WRONG_LENGTH);
            }
            self.chain = chain;
            return sw_only(Sw::OK);
        }
        let Card { app, pending, .. } = self;
        let pin_always = if chain.header.is_some() { chain.pin_always } else { pin_always };
        let whole = if chain.header.is_some() {
            if chain.data.extend_from_slice(apdu.data).is_err() {
                return sw_only(Sw::WRONG_LENGTH);
            }
            CommandApdu { data: &chain.data, ..apdu }
        } else {
            apdu
        };
        // A plain PIV card does not know the Yubico instructions at all, whatever P1 P2 say.
        let plain = app.state.flavor == super::state::Flavor::Plain;
        let parsed =
            if plain && ins::is_yubico(whole.ins) { Err(Sw::INS_NOT_SUPPORTED) } else { Command::parse(&whole) };
        let sw = match parsed {
            Ok(cmd) => app.execute(cmd, pin_always, &mut pending.data),
            Err(sw) => sw,
        };
        if !sw.is_ok() {
            pending.clear();
            return sw_only(sw);
        }
        pending.next(le_of(&apdu), &mut out, sw);
        out
    }
}

/// Bytes the host accepts in this response. Without Le (libykpiv's GET DATA) the card
/// still answers, at most 256 bytes at a time.
fn le_of(apdu: &CommandApdu<'_>) -> usize {
    match apdu.le {
        Some(le) if apdu.extended => le.min(MAX_REPLY),
        Some(le) => le.min(256),
        None => 256,
    }
}

fn sw_only(sw: Sw) -> Response {
    let mut r = Response::new();
    let _ = r.put(&sw.to_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact ATR OpenSC and pcscd see, and its check byte (XOR of T0..TCK is zero).
    #[test]
    fn atr_bytes_and_check_byte() {
        assert_eq!(
            ATR,
            [
                0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, b'u', b'k',
                b'e', b'y', b'P', b'I', b'V', 0x7D
            ]
        );
        assert_eq!(ATR[1..].iter().fold(0u8, |acc, b| acc ^ b), 0, "TCK");
    }

    fn card() -> Card<super::super::NoStorage, impl CryptoRngCore> {
        use super::super::exec::{factory_state, Defaults};
        let mut rng = crate::rng::make_rng(Some(3), 0);
        let state = factory_state(9, super::super::state::Flavor::Plain, &Defaults::factory(), &mut rng).unwrap();
        Card::new(state, super::super::NoStorage, rng)
    }

    #[test]
    fn power_off_silences_the_card_until_reset() {
        let mut c = card();
        assert!(c.is_powered());
        c.power_off();
        assert!(!c.is_powered());
        assert_eq!(&c.transmit(&[0, 0x20, 0, 0x80])[..], &Sw::CONDITIONS_NOT_SATISFIED.to_bytes());
        assert_eq!(c.reset(), ATR);
        assert!(c.is_powered());
        assert_eq!(&c.transmit(&[0, 0x20, 0, 0x80])[..], &[0x63, 0xC3]);
    }

    #[test]
    fn class_bytes_other_than_00_and_chaining() {
        let mut c = card();
        // Secure messaging bits (ISO 7816-4 interindustry class): 6882; logical channels and
        // proprietary classes: 6E00.
        for (cla, sw) in [(0x0C, Sw::SECURE_MESSAGING_NOT_SUPPORTED), (0x04, Sw::SECURE_MESSAGING_NOT_SUPPORTED)] {
            assert_eq!(&c.transmit(&[cla, 0x20, 0, 0x80])[..], &sw.to_bytes(), "CLA {cla:02X}");
        }
        for cla in [0x01, 0x02, 0x03, 0x40, 0x80, 0x8C, 0xA0, 0xFF] {
            assert_eq!(&c.transmit(&[cla, 0x20, 0, 0x80])[..], &Sw::CLA_NOT_SUPPORTED.to_bytes(), "CLA {cla:02X}");
        }
        assert_eq!(&c.transmit(&[0x00, 0x20, 0, 0x80])[..], &[0x63, 0xC3]);
    }

    #[test]
    fn a_largest_object_comes_back_in_one_extended_response() {
        let mut c = card();
        let body = super::super::state::MAX_OBJECT - 4;
        let mut object = heapless::Vec::<u8, { super::super::state::MAX_OBJECT }>::new();
        object.extend_from_slice(&[0x53, 0x82, (body >> 8) as u8, body as u8]).unwrap();
        object.resize(super::super::state::MAX_OBJECT, 0x5A).unwrap();
        c.update_state(|s, _| s.objects.set(0x5FC105, &object)).unwrap().unwrap();
        // Extended Lc and Le (00 00 00: up to 65536 bytes).
        let get = [0, 0xCB, 0x3F, 0xFF, 0, 0, 5, 0x5C, 3, 0x5F, 0xC1, 0x05, 0, 0];
        let r = c.transmit(&get);
        assert_eq!(r.len(), object.len() + 2);
        assert_eq!((&r[..object.len()], &r[object.len()..]), (&object[..], &[0x90, 0][..]));
        // Short Le 00 (256): the same object in 61xx pieces.
        let r = c.transmit(&[0, 0xCB, 0x3F, 0xFF, 5, 0x5C, 3, 0x5F, 0xC1, 0x05, 0]);
        assert_eq!((r.len(), &r[256..]), (258, &[0x61, 0x00][..]));
    }
}

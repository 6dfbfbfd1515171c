//! The reader's one slot, as CCID rev 1.1 §6 has it: whole bulk messages in, replies out,
//! the card's work handed to whoever owns the card. No USB here (see `class`) and no card
//! either: the owner takes [`Slot::pending_work`], runs it on the card (in firmware, directly;
//! in the simulator, on a worker thread while time extensions go out) and hands the result
//! back with [`Slot::finish`]. Every buffer is inline and bounded: no_std, no allocation.

use heapless::{Deque, Vec};
use proto::ccid::{self, cmd, error, reply, Chain, Header, Icc, Outcome, Status, HEADER};

use super::{MAX_APDU, MAX_MESSAGE, MAX_RESPONSE};

/// The largest data part of one message.
const MAX_DATA: usize = MAX_MESSAGE - HEADER;

/// What the card must do for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work<'a> {
    /// Power up (or warm-reset) the card: its security status is gone; answer its ATR.
    PowerOn,
    /// Cut the card's power: its security status is gone.
    PowerOff,
    Apdu(&'a [u8]),
}

/// What came of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done<'a> {
    Atr(&'a [u8]),
    PoweredOff,
    Response(&'a [u8]),
    /// The card gave no answer (it lost power in the middle of the command).
    Mute,
    /// There is no card (the simulated key was pulled out of its reader).
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    PowerOn,
    PowerOff,
    Apdu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Pieces of a chained XfrBlock are arriving.
    Receiving,
    /// Work is waiting for the owner to take it.
    Ready(Job),
    /// The owner has the work, under this id.
    Working(Job, u32),
    /// A response longer than one message is going out piece by piece.
    Sending,
}

/// A reply waiting to be written; data lives in the slot's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// A header-only reply of `kind` (SlotStatus, or a failed DataBlock/Parameters/...).
    Bare {
        kind: u8,
        seq: u8,
        status: Status,
        error: u8,
        specific: u8,
    },
    /// A DataBlock with `len` bytes of the response from `start` (or the ATR, `atr`).
    Data {
        seq: u8,
        start: usize,
        len: usize,
        chain: Chain,
        atr: bool,
    },
    Parameters {
        seq: u8,
    },
}

pub struct Slot {
    powered: bool,
    state: State,
    /// The sequence number of the command in progress.
    seq: u8,
    next_id: u32,
    apdu: Vec<u8, MAX_APDU>,
    response: Vec<u8, MAX_RESPONSE>,
    sent: usize,
    atr: Vec<u8, 33>,
    replies: Deque<Reply, 4>,
    /// A control-pipe ABORT for this bSeq came: bulk commands fail until its bulk twin.
    aborting: Option<u8>,
    /// A bulk PC_to_RDR_Abort came first: answered when the control request follows.
    bulk_abort: Option<u8>,
    /// A USB reset happened: the card must lose power before anything else reaches it.
    /// Not a command of the host's: it never makes the slot busy, and nobody is answered.
    reset_due: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot::new()
    }
}

/// T=1 protocol data for Parameters (§6.2.3): Fi/Di 1/1, LRC, guard time 0, BWI 4 CWI 5,
/// no clock stop, IFSC 254, NAD 0.
const T1_PARAMETERS: [u8; 7] = [0x11, 0x10, 0x00, 0x45, 0x00, 0xFE, 0x00];

impl Slot {
    pub const fn new() -> Slot {
        Slot {
            powered: false,
            state: State::Idle,
            seq: 0,
            next_id: 0,
            apdu: Vec::new(),
            response: Vec::new(),
            sent: 0,
            atr: Vec::new(),
            replies: Deque::new(),
            aborting: None,
            bulk_abort: None,
            reset_due: false,
        }
    }

    fn icc(&self) -> Icc {
        if self.powered {
            Icc::Active
        } else {
            Icc::Inactive
        }
    }

    fn ok(&self) -> Status {
        Status { icc: self.icc(), outcome: Outcome::Ok }
    }

    fn failed(&self) -> Status {
        Status { icc: self.icc(), outcome: Outcome::Failed }
    }

    fn push(&mut self, r: Reply) {
        if self.replies.is_full() {
            // A host that sends commands without reading replies loses the oldest.
            self.replies.pop_front();
        }
        let _ = self.replies.push_back(r);
    }

    /// A failed command of message type `kind`, answered with the reply type it expects.
    fn fail(&mut self, kind: u8, seq: u8, err: u8) {
        let status = self.failed();
        self.fail_with(kind, seq, status, err);
    }

    fn fail_with(&mut self, kind: u8, seq: u8, status: Status, err: u8) {
        self.push(Reply::Bare { kind: reply_kind(kind), seq, status, error: err, specific: 0 });
    }

    fn busy(&self) -> bool {
        matches!(self.state, State::Ready(_) | State::Working(..))
    }

    /// One whole bulk message from the host.
    pub fn command(&mut self, msg: &[u8]) {
        let (h, data) = match ccid::split(msg) {
            Ok(v) => v,
            Err(_) => {
                if let Ok(h) = Header::parse(msg) {
                    self.fail(h.kind, h.seq, error::BAD_LENGTH);
                }
                return;
            }
        };
        if let Some(s) = self.aborting {
            if h.kind == cmd::ABORT && h.seq == s {
                self.aborting = None;
                let status = self.ok();
                self.push(Reply::Bare { kind: reply::SLOT_STATUS, seq: h.seq, status, error: 0, specific: 0 });
            } else {
                self.fail(h.kind, h.seq, error::CMD_ABORTED);
            }
            return;
        }
        if h.slot != 0 {
            let status = Status { icc: Icc::Absent, outcome: Outcome::Failed };
            self.fail_with(h.kind, h.seq, status, error::BAD_SLOT);
            return;
        }
        if h.kind == cmd::ABORT {
            // Answered once the control-pipe half arrives (§5.3.1).
            self.bulk_abort = Some(h.seq);
            return;
        }
        if self.busy() {
            self.fail(h.kind, h.seq, error::CMD_SLOT_BUSY);
            return;
        }
        match h.kind {
            cmd::ICC_POWER_ON => {
                if h.params[0] > 3 {
                    self.fail(h.kind, h.seq, error::BAD_POWER_SELECT);
                } else {
                    self.start(h.seq, Job::PowerOn);
                }
            }
            cmd::ICC_POWER_OFF => self.start(h.seq, Job::PowerOff),
            cmd::GET_SLOT_STATUS => {
                let status = self.ok();
                self.push(Reply::Bare { kind: reply::SLOT_STATUS, seq: h.seq, status, error: 0, specific: 0 });
            }
            cmd::XFR_BLOCK => self.xfr_block(&h, data),
            cmd::GET_PARAMETERS | cmd::RESET_PARAMETERS => self.push(Reply::Parameters { seq: h.seq }),
            cmd::SET_PARAMETERS => {
                if h.params[0] == 1 {
                    self.push(Reply::Parameters { seq: h.seq });
                } else {
                    // Only T=1: bProtocolNum (offset 7) is refused.
                    self.fail(h.kind, h.seq, 7);
                }
            }
            _ => self.fail(h.kind, h.seq, error::CMD_NOT_SUPPORTED),
        }
    }

    fn start(&mut self, seq: u8, job: Job) {
        self.seq = seq;
        self.state = State::Ready(job);
    }

    fn xfr_block(&mut self, h: &Header, data: &[u8]) {
        let Some(chain) = Chain::parse(h.level()) else {
            self.fail(h.kind, h.seq, error::BAD_LEVEL_PARAMETER);
            return;
        };
        if !self.powered {
            self.fail(h.kind, h.seq, error::ICC_MUTE);
            return;
        }
        match (self.state, chain) {
            (State::Sending, Chain::More) => {
                self.seq = h.seq;
                self.next_piece();
            }
            (State::Idle | State::Receiving | State::Sending, Chain::Whole | Chain::Begins) => {
                self.apdu.clear();
                self.append(h, data, chain);
            }
            (State::Receiving, Chain::Continues | Chain::Ends) => self.append(h, data, chain),
            _ => {
                self.state = State::Idle;
                self.fail(h.kind, h.seq, error::BAD_LEVEL_PARAMETER);
            }
        }
    }

    fn append(&mut self, h: &Header, data: &[u8], chain: Chain) {
        if self.apdu.extend_from_slice(data).is_err() {
            self.apdu.clear();
            self.state = State::Idle;
            self.fail(h.kind, h.seq, error::BAD_LENGTH);
            return;
        }
        if chain.more_follows() {
            self.state = State::Receiving;
            self.seq = h.seq;
            // An empty DataBlock that asks for the next piece (§6.1.4, Table 6.1-3).
            self.push(Reply::Data { seq: h.seq, start: 0, len: 0, chain: Chain::More, atr: false });
        } else {
            self.start(h.seq, Job::Apdu);
        }
    }

    fn next_piece(&mut self) {
        let left = self.response.len() - self.sent;
        let len = left.min(MAX_DATA);
        let first = self.sent == 0;
        let last = len == left;
        let chain = match (first, last) {
            (true, true) => Chain::Whole,
            (true, false) => Chain::Begins,
            (false, true) => Chain::Ends,
            (false, false) => Chain::Continues,
        };
        self.push(Reply::Data { seq: self.seq, start: self.sent, len, chain, atr: false });
        self.sent += len;
        self.state = if last { State::Idle } else { State::Sending };
    }

    /// The card's work, once: the id to finish it with, and what to do.
    pub fn pending_work(&mut self) -> Option<(u32, Work<'_>)> {
        if core::mem::take(&mut self.reset_due) {
            // Id 0 is never work of the host's: its result is dropped.
            return Some((0, Work::PowerOff));
        }
        let State::Ready(job) = self.state else { return None };
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        self.state = State::Working(job, id);
        Some((
            id,
            match job {
                Job::PowerOn => Work::PowerOn,
                Job::PowerOff => Work::PowerOff,
                Job::Apdu => Work::Apdu(&self.apdu),
            },
        ))
    }

    /// The result of work `id`. A result for work that was aborted or overtaken is dropped.
    pub fn finish(&mut self, id: u32, done: Done<'_>) {
        let State::Working(job, current) = self.state else { return };
        if current != id {
            return;
        }
        self.state = State::Idle;
        // The command may have carried a PIN or a key: gone once answered.
        zeroize::Zeroize::zeroize(&mut self.apdu[..]);
        self.apdu.clear();
        let seq = self.seq;
        match (job, done) {
            (_, Done::Absent) => {
                self.powered = false;
                let kind = if job == Job::PowerOff { cmd::ICC_POWER_OFF } else { cmd::XFR_BLOCK };
                let status = Status { icc: Icc::Absent, outcome: Outcome::Failed };
                self.fail_with(kind, seq, status, error::ICC_MUTE);
            }
            (Job::PowerOff, _) => {
                self.powered = false;
                let status = self.ok();
                self.push(Reply::Bare { kind: reply::SLOT_STATUS, seq, status, error: 0, specific: 0 });
            }
            (Job::PowerOn, Done::Atr(atr)) if atr.len() <= self.atr.capacity() => {
                self.atr.clear();
                let _ = self.atr.extend_from_slice(atr);
                self.powered = true;
                self.push(Reply::Data { seq, start: 0, len: atr.len(), chain: Chain::Whole, atr: true });
            }
            (Job::PowerOn, _) => {
                self.powered = false;
                self.fail(cmd::ICC_POWER_ON, seq, error::ICC_MUTE);
            }
            (Job::Apdu, Done::Response(r)) if r.len() >= 2 && r.len() <= self.response.capacity() => {
                self.response.clear();
                let _ = self.response.extend_from_slice(r);
                self.sent = 0;
                self.next_piece();
            }
            (Job::Apdu, Done::Mute) => {
                // The card went quiet mid-command: to the host it is a card without power.
                self.powered = false;
                self.fail(cmd::XFR_BLOCK, seq, error::ICC_MUTE);
            }
            (Job::Apdu, _) => self.fail(cmd::XFR_BLOCK, seq, error::HW_ERROR),
        }
    }

    /// Ask the host for more time for the work in progress (§6.2.6: bmCommandStatus 2, bError
    /// the multiplier of the waiting time). Nothing when no work is in progress or a reply is
    /// already waiting to go out.
    pub fn time_extension(&mut self) -> bool {
        if !self.busy() || !self.replies.is_empty() {
            return false;
        }
        let status = Status { icc: self.icc(), outcome: Outcome::TimeExtension };
        self.push(Reply::Bare { kind: reply::DATA_BLOCK, seq: self.seq, status, error: 1, specific: 0 });
        true
    }

    /// Whether the card's work is in progress (the owner times its extensions by this).
    pub fn is_working(&self) -> bool {
        matches!(self.state, State::Working(..))
    }

    /// The control-pipe half of an abort (class request ABORT, wValue = bSeq << 8 | bSlot).
    pub fn control_abort(&mut self, slot: u8, seq: u8) {
        if slot != 0 {
            return;
        }
        // Whatever was going on is dropped: its result, if it comes, is ignored.
        self.state = State::Idle;
        self.apdu.clear();
        self.replies.clear();
        if self.bulk_abort == Some(seq) {
            self.bulk_abort = None;
            let status = self.ok();
            self.push(Reply::Bare { kind: reply::SLOT_STATUS, seq, status, error: 0, specific: 0 });
        } else {
            self.aborting = Some(seq);
        }
    }

    /// A USB bus reset: every exchange is dropped and the card loses power.
    pub fn usb_reset(&mut self) {
        self.replies.clear();
        self.apdu.clear();
        self.aborting = None;
        self.bulk_abort = None;
        self.state = State::Idle;
        self.powered = false;
        self.reset_due = true;
    }

    /// Write the next reply into `out` (cleared first); false when there is none.
    pub fn take_reply(&mut self, out: &mut Vec<u8, MAX_MESSAGE>) -> bool {
        let Some(r) = self.replies.pop_front() else { return false };
        out.clear();
        match r {
            Reply::Bare { kind, seq, status, error, specific } => {
                let _ = out.extend_from_slice(&ccid::reply_header(kind, seq, 0, status, error, specific));
            }
            Reply::Data { seq, start, len, chain, atr } => {
                let src = if atr { &self.atr[..] } else { &self.response[..] };
                // A piece queued for a response that a later command has since replaced (a
                // host that sent on without reading) no longer has its bytes: it fails.
                let Some(piece) = start.checked_add(len).and_then(|end| src.get(start..end)) else {
                    let status = self.failed();
                    let h = ccid::reply_header(reply::DATA_BLOCK, seq, 0, status, error::HW_ERROR, 0);
                    let _ = out.extend_from_slice(&h);
                    return true;
                };
                let status = self.ok();
                let _ = out.extend_from_slice(&ccid::reply_header(reply::DATA_BLOCK, seq, len, status, 0, chain as u8));
                let _ = out.extend_from_slice(piece);
            }
            Reply::Parameters { seq } => {
                let status = self.ok();
                let h = ccid::reply_header(reply::PARAMETERS, seq, T1_PARAMETERS.len(), status, 0, 1);
                let _ = out.extend_from_slice(&h);
                let _ = out.extend_from_slice(&T1_PARAMETERS);
            }
        }
        true
    }
}

/// The reply type each command expects (§6.2, Table 6.2-1).
fn reply_kind(kind: u8) -> u8 {
    match kind {
        cmd::ICC_POWER_ON | cmd::XFR_BLOCK | cmd::SECURE => reply::DATA_BLOCK,
        cmd::GET_PARAMETERS | cmd::RESET_PARAMETERS | cmd::SET_PARAMETERS => reply::PARAMETERS,
        cmd::ESCAPE => reply::ESCAPE,
        cmd::SET_DATA_RATE => reply::DATA_RATE_AND_CLOCK,
        _ => reply::SLOT_STATUS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, seq: u8, params: [u8; 3], data: &[u8]) -> std::vec::Vec<u8> {
        let mut m = Header { kind, len: data.len() as u32, slot: 0, seq, params }.to_bytes().to_vec();
        m.extend_from_slice(data);
        m
    }

    fn replies(s: &mut Slot) -> std::vec::Vec<std::vec::Vec<u8>> {
        let mut out = Vec::new();
        let mut all = std::vec::Vec::new();
        while s.take_reply(&mut out) {
            all.push(out.to_vec());
        }
        all
    }

    /// Run the pending work as a card that echoes APDUs with 9000.
    fn work(s: &mut Slot) {
        let (id, w) = s.pending_work().expect("work");
        match w {
            Work::PowerOn => s.finish(id, Done::Atr(&[0x3B, 0x80, 0x80, 0x01, 0x01])),
            Work::PowerOff => s.finish(id, Done::PoweredOff),
            Work::Apdu(a) => {
                let mut r = a.to_vec();
                r.extend([0x90, 0x00]);
                s.finish(id, Done::Response(&r));
            }
        }
    }

    #[test]
    fn power_on_answers_the_atr_and_xfr_block_the_response() {
        let mut s = Slot::new();
        s.command(&msg(cmd::XFR_BLOCK, 1, [0; 3], &[0, 0xA4, 4, 0]));
        assert_eq!(replies(&mut s), [[0x80, 0, 0, 0, 0, 0, 1, 0x41, 0xFE, 0]], "an unpowered card is mute");
        s.command(&msg(cmd::ICC_POWER_ON, 2, [0; 3], &[]));
        work(&mut s);
        assert_eq!(replies(&mut s), [msg(reply::DATA_BLOCK, 2, [0, 0, 0], &[0x3B, 0x80, 0x80, 0x01, 0x01])]);
        s.command(&msg(cmd::XFR_BLOCK, 3, [0; 3], &[0, 0xA4, 4, 0]));
        assert!(s.time_extension());
        work(&mut s);
        let r = replies(&mut s);
        assert_eq!(r[0], [0x80, 0, 0, 0, 0, 0, 3, 0x80, 1, 0], "time extension first");
        assert_eq!(r[1], msg(reply::DATA_BLOCK, 3, [0, 0, 0], &[0, 0xA4, 4, 0, 0x90, 0]));
        s.command(&msg(cmd::ICC_POWER_OFF, 4, [0; 3], &[]));
        work(&mut s);
        assert_eq!(replies(&mut s), [[0x81, 0, 0, 0, 0, 0, 4, 0x01, 0, 0]]);
    }

    #[test]
    fn chained_commands_and_responses_at_the_extended_apdu_level() {
        let mut s = Slot::new();
        s.command(&msg(cmd::ICC_POWER_ON, 0, [0; 3], &[]));
        work(&mut s);
        replies(&mut s);
        let apdu: std::vec::Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let parts: std::vec::Vec<&[u8]> = apdu.chunks(1000).collect();
        s.command(&msg(cmd::XFR_BLOCK, 1, [0, 1, 0], parts[0]));
        assert_eq!(replies(&mut s), [[0x80, 0, 0, 0, 0, 0, 1, 0, 0, 0x10]], "send the next piece");
        s.command(&msg(cmd::XFR_BLOCK, 2, [0, 3, 0], parts[1]));
        replies(&mut s);
        s.command(&msg(cmd::XFR_BLOCK, 3, [0, 2, 0], parts[2]));
        work(&mut s);
        let mut back = std::vec::Vec::new();
        let mut seq = 3;
        loop {
            let r = replies(&mut s);
            assert_eq!(r.len(), 1);
            let (h, data) = ccid::split(&r[0]).unwrap();
            assert_eq!(h.seq, seq);
            back.extend_from_slice(data);
            if !Chain::parse(h.params[2].into()).unwrap().more_follows() {
                break;
            }
            seq += 1;
            s.command(&msg(cmd::XFR_BLOCK, seq, [0, 0x10, 0], &[]));
        }
        assert_eq!(&back[..2500], &apdu[..]);
        assert_eq!(&back[2500..], [0x90, 0x00]);
    }

    #[test]
    fn a_piece_of_a_replaced_response_fails_instead_of_panicking() {
        let mut s = Slot::new();
        s.command(&msg(cmd::ICC_POWER_ON, 0, [0; 3], &[]));
        work(&mut s);
        replies(&mut s);
        // A long response: its first piece is queued, and the host does not read it...
        let apdu: std::vec::Vec<u8> = (0..MAX_DATA as u32 + 100).map(|i| i as u8).collect();
        s.command(&msg(cmd::XFR_BLOCK, 1, [0; 3], &apdu));
        work(&mut s);
        // ...but sends a short command on, whose answer replaces the response.
        s.command(&msg(cmd::XFR_BLOCK, 2, [0; 3], &[0, 0xB0, 0, 0]));
        work(&mut s);
        let r = replies(&mut s);
        assert_eq!(r.len(), 2);
        assert_eq!(&r[0][..10], [0x80, 0, 0, 0, 0, 0, 1, 0x40, error::HW_ERROR, 0], "the stale piece fails");
        assert_eq!(ccid::split(&r[1]).unwrap().1, [0, 0xB0, 0, 0, 0x90, 0x00], "the new answer is whole");
    }

    #[test]
    fn busy_abort_and_bad_messages() {
        let mut s = Slot::new();
        s.command(&msg(cmd::ICC_POWER_ON, 0, [0; 3], &[]));
        work(&mut s);
        replies(&mut s);
        s.command(&msg(cmd::XFR_BLOCK, 1, [0; 3], &[0, 0xB0, 0, 0]));
        let (id, _) = s.pending_work().unwrap();
        s.command(&msg(cmd::GET_SLOT_STATUS, 2, [0; 3], &[]));
        assert_eq!(replies(&mut s), [[0x81, 0, 0, 0, 0, 0, 2, 0x40, 0xE0, 0]], "slot busy");
        // Abort: control half, a command refused meanwhile, then the bulk half.
        s.control_abort(0, 1);
        s.finish(id, Done::Response(&[0x90, 0x00]));
        s.command(&msg(cmd::GET_SLOT_STATUS, 5, [0; 3], &[]));
        s.command(&msg(cmd::ABORT, 1, [0; 3], &[]));
        assert_eq!(replies(&mut s), [[0x81, 0, 0, 0, 0, 0, 5, 0x40, 0xFF, 0], [0x81, 0, 0, 0, 0, 0, 1, 0, 0, 0]]);
        // Truncated, other slot, unknown type, bad level.
        s.command(&[0x6F, 5, 0, 0, 0, 0, 6, 0, 0, 0, 1]);
        s.command(&Header { kind: cmd::GET_SLOT_STATUS, len: 0, slot: 1, seq: 7, params: [0; 3] }.to_bytes());
        s.command(&msg(0x99, 8, [0; 3], &[]));
        s.command(&msg(cmd::XFR_BLOCK, 9, [0, 7, 0], &[1, 2, 3, 4]));
        let r = replies(&mut s);
        assert_eq!(r.len(), 4);
        assert_eq!((r[0][0], r[0][6], r[0][8]), (0x80, 6, error::BAD_LENGTH));
        assert_eq!((r[1][6], r[1][7], r[1][8]), (7, 0x42, error::BAD_SLOT));
        assert_eq!((r[2][0], r[2][8]), (0x81, error::CMD_NOT_SUPPORTED));
        assert_eq!((r[3][0], r[3][8]), (0x80, error::BAD_LEVEL_PARAMETER));
    }

    #[test]
    fn a_usb_reset_powers_the_card_off_and_answers_nobody() {
        let mut s = Slot::new();
        s.command(&msg(cmd::ICC_POWER_ON, 0, [0; 3], &[]));
        work(&mut s);
        s.usb_reset();
        // The host may already ask: the slot is not busy with the reset.
        s.command(&msg(cmd::ICC_POWER_ON, 1, [0; 3], &[]));
        assert!(matches!(s.pending_work(), Some((0, Work::PowerOff))), "the power cut goes first");
        s.finish(0, Done::PoweredOff);
        work(&mut s);
        assert_eq!(replies(&mut s), [msg(reply::DATA_BLOCK, 1, [0, 0, 0], &[0x3B, 0x80, 0x80, 0x01, 0x01])]);
    }
}

//! The one seam between the host driver and a key: an APDU goes in, a response comes out.

use alloc::string::String;
use alloc::vec::Vec;

/// How a key is reached: in-process virtual key, PC/SC reader, CCID device.
/// Implementations move bytes and nothing else: they never look inside an APDU.
pub trait Transport: Send {
    /// Send one command APDU, return the whole response including SW1 SW2.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError>;
    /// Reset the card (warm reset); returns the ATR.
    fn reset(&mut self) -> Result<Vec<u8>, TransportError>;
    /// Whether a card is present.
    fn is_present(&mut self) -> bool;
    /// What a person would call this key or reader.
    fn name(&self) -> String;
    /// Whether an exchange may wait on something outside this process's memory (a reader,
    /// pcscd, a disk). Async callers move such exchanges to a blocking thread and run the
    /// others in place. When unsure, an implementation says yes.
    fn may_block(&self) -> bool {
        true
    }
    /// Hold the card for one operation of several exchanges (a VERIFY and the signature it
    /// allows, a chained write), so no other program's commands come between them, until
    /// [`release`](Transport::release). A key only this process reaches needs no holding.
    fn hold(&mut self) -> Result<Hold, TransportError> {
        Ok(Hold::Alone)
    }
    /// End what [`hold`](Transport::hold) began.
    fn release(&mut self) {}
}

/// What [`Transport::hold`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No other program reaches the card between our operations: a key in this process, or a
    /// transport that holds the card for its whole life.
    Alone,
    /// Other programs share the card and may have used it since our last operation (and
    /// selected another application: select again). `reset`: one of them reset the card, so
    /// the security status this program had (PIN verified, management key) is gone.
    Shared { reset: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no card present in {0}")]
    NoCard(String),
    #[error("card was removed from {0}")]
    Removed(String),
    /// The card lost power or was reset while it ran the command: whether the command took
    /// effect is unknown, and its security status (PIN verified, management key) is gone.
    #[error("the card in {0} was reset during the command (power lost, or another program reset it); its PIN state is gone, start again")]
    Reset(String),
    #[error("transport I/O failed: {0}")]
    Io(String),
    #[error("the card answered with fewer than two bytes")]
    ShortResponse,
}

/// A hand on a key's power, which only a simulated key offers: the conformance suite cuts it
/// at the card's next persistent write to see that a PIN's try is spent before the PIN is
/// compared (a card that compares first gives free guesses to a host that times the cut).
pub trait PowerSwitch: Send {
    /// Cut the power during the card's next persistent write: that write does not happen,
    /// the command gets no answer (the transport says [`TransportError::Reset`]).
    fn cut_at_next_write(&mut self);
    /// Put the power back as it was: nothing is cut any more.
    fn cancel(&mut self);
}

impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        (**self).reset()
    }
    fn is_present(&mut self) -> bool {
        (**self).is_present()
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn may_block(&self) -> bool {
        (**self).may_block()
    }
    fn hold(&mut self) -> Result<Hold, TransportError> {
        (**self).hold()
    }
    fn release(&mut self) {
        (**self).release()
    }
}

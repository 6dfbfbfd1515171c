//! A card's behaviour, written as a closure in front of another transport: the tap sees every
//! APDU (and keeps it in [`Tap::sent`]), and its rule answers it, by asking the transport
//! behind, changing that answer, or answering alone. Tests use it for the lenient, picky and
//! broken cards real middleware meets, in a few lines each.

use proto::{Transport, TransportError};

/// What a rule answers: the response APDU (data and status word), or a transport error.
pub type Answer = Result<Vec<u8>, TransportError>;

type Rule<T> = Box<dyn FnMut(&[u8], &mut T) -> Answer + Send>;

pub struct Tap<T> {
    /// The transport behind (a virtual key, mostly).
    pub inner: T,
    /// Every APDU sent, in order.
    pub sent: Vec<Vec<u8>>,
    rule: Rule<T>,
    name: String,
}

impl<T: Transport> Tap<T> {
    /// Every APDU goes to `inner`, and is recorded.
    pub fn recording(inner: T) -> Tap<T> {
        Tap::new(inner, |apdu, inner| inner.transmit(apdu))
    }

    /// Every APDU is answered by `rule(apdu, inner)`.
    pub fn new(inner: T, rule: impl FnMut(&[u8], &mut T) -> Answer + Send + 'static) -> Tap<T> {
        let name = format!("tap on {}", inner.name());
        Tap { inner, sent: Vec::new(), rule: Box::new(rule), name }
    }

    /// Under another name (the transport's name shows in the driver's errors).
    pub fn named(mut self, name: &str) -> Tap<T> {
        self.name = name.into();
        self
    }

    /// The APDUs sent with instruction `ins`.
    pub fn sent_with(&self, ins: u8) -> Vec<&[u8]> {
        self.sent.iter().filter(|a| a.get(1) == Some(&ins)).map(Vec::as_slice).collect()
    }
}

impl Tap<NoCard> {
    /// A card that is only `rule`: nothing behind it.
    pub fn card(mut rule: impl FnMut(&[u8]) -> Answer + Send + 'static) -> Tap<NoCard> {
        Tap::new(NoCard, move |apdu, _| rule(apdu)).named("tap")
    }
}

impl<T: Transport> Transport for Tap<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Answer {
        self.sent.push(apdu.to_vec());
        (self.rule)(apdu, &mut self.inner)
    }
    fn reset(&mut self) -> Answer {
        self.inner.reset()
    }
    fn is_present(&mut self) -> bool {
        self.inner.is_present()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}

/// Behind a [`Tap::card`]: present, with an ATR of `3B`, and no applications (6F00).
pub struct NoCard;

impl Transport for NoCard {
    fn transmit(&mut self, _: &[u8]) -> Answer {
        Ok(vec![0x6F, 0x00])
    }
    fn reset(&mut self) -> Answer {
        Ok(vec![0x3B])
    }
    fn is_present(&mut self) -> bool {
        true
    }
    fn name(&self) -> String {
        "no card".into()
    }
}

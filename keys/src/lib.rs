//! The wiring the `ukey` CLI, the PKCS#11 module and the libraries to come share, so that each
//! question has one answer: where ukey's files are ([`home`]), where a key is and how it is
//! opened ([`locator`], [`ccid`], [`session`]), which keys this machine has ([`discover`],
//! and the agent's [`provider`]), whether `ukey sim serve` holds a key ([`served`]).

pub mod ccid;
pub mod discover;
pub mod error;
pub mod factory;
pub mod home;
pub mod locator;
pub mod provider;
pub mod served;
pub mod session;

pub use error::Error;
pub use locator::Locator;

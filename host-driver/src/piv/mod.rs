//! The PIV client: typed operations over a [`Transport`], split by job: [`channel`] (GET
//! RESPONSE, wrong-Le retries and command chaining, once for every operation), [`pin`],
//! [`mgmt`] (the management key, and the card's randomness under it), [`keys`], [`objects`]
//! (data objects and certificates) and [`yubico`] (the Yubico extensions).

mod channel;
mod client;
mod keys;
mod mgmt;
mod objects;
mod pin;
mod yubico;

pub use client::{Applet, Piv};
pub use keys::{EcdsaSignature, KeySource, MetadataGap, OldCertificate, Regenerated, SlotKey};
pub use pin::{PinOutcome, PinStatus};
/// GET METADATA, decoded: proto's one definition, shared with the card.
pub use proto::piv::metadata::{KeyAlgorithm, Metadata, Origin};

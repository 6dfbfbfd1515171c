//! The CA's CRL, made on demand, one at a time, and kept until a revocation changes the list
//! or half its validity has passed. Its number is the time it was made in seconds, or one more
//! than the number before when two lists are made within a second: it grows with every list
//! of this instance, and across instances on one database as far as their clocks agree (a
//! shared counter in the database would make that exact).

use proto::Clock;

use crate::store::Store;

/// A CRL made earlier, and what it was made from.
struct CachedCrl {
    der: Vec<u8>,
    number: u64,
    this_update: u64,
    next_update: u64,
    revoked: Vec<(String, i64, Option<String>)>,
}

/// The last CRL made, if any.
#[derive(Default)]
pub(super) struct CrlCache(tokio::sync::Mutex<Option<CachedCrl>>);

impl CrlCache {
    /// The current CRL (DER) and its nextUpdate; a new one is valid for `validity` seconds.
    pub(super) async fn current(
        &self,
        store: &Store,
        issuer: &ca::Ca,
        clock: &(dyn Clock + Send + Sync),
        validity: u64,
    ) -> Result<(Vec<u8>, u64), String> {
        // One list at a time: two made at once from lists read at different moments could
        // number an older view above a newer one.
        let mut cached = self.0.lock().await;
        let revoked = store.revoked_certificates().await.map_err(|e| e.to_string())?;
        let now = (clock.now_unix() as i64).max(0) as u64;
        if let Some(c) = cached.as_ref() {
            if c.revoked == revoked && now < c.this_update + validity / 2 {
                return Ok((c.der.clone(), c.next_update));
            }
        }
        let entries = revoked
            .iter()
            .map(|(serial, at, reason)| {
                Ok(ca::crl::Revoked {
                    serial: hex::decode(serial).map_err(|e| format!("stored serial {serial:?}: {e}"))?,
                    revoked_at: (*at).max(0) as u64,
                    reason: reason.as_deref().and_then(ca::crl::Reason::parse).unwrap_or(ca::crl::Reason::Unspecified),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let number = cached.as_ref().map_or(now, |c| now.max(c.number + 1));
        let next_update = now + validity;
        let der = issuer.crl(&entries, number, now, next_update).map_err(|e| e.to_string())?;
        *cached = Some(CachedCrl { der: der.clone(), number, this_update: now, next_update, revoked });
        Ok((der, next_update))
    }
}

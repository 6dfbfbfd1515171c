//! The proof that a PIN or PUK try was spent and written to storage.

/// Proof that a PIN or PUK try was spent and written to storage (`PivApp::spend_try` makes
/// the only ones, through [`Persisted::after`]). [`Secret::matches`](super::state::Secret::matches)
/// takes one by value: the order of the security rule ("persisted before compared") is kept
/// by the types, not by care.
pub struct Persisted(());

impl Persisted {
    /// The proof, once `write` (the write of the spent try) has succeeded; its error
    /// otherwise. The card application's only way to one.
    pub(super) fn after<E>(write: impl FnOnce() -> Result<(), E>) -> Result<Persisted, E> {
        write()?;
        Ok(Persisted(()))
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Persisted {
        Persisted(())
    }
}

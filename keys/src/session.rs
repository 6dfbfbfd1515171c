//! A key opened for one command: PIV selected, the PIN session ended when done.

use host_driver::Piv;
use proto::transport::Transport;

use crate::error::Error;
use crate::locator::Locator;

/// A key a command opened: any transport behind one PIV client. Ends the PIN session (VERIFY
/// P1=FF) when dropped: a reader key is shared with every program on the machine, and a PIN
/// this command verified must not stay verified for them.
pub struct Session(Piv<Box<dyn Transport>>);

impl Session {
    /// Open the key at `locator` ([`Locator::open`]) and select PIV on it.
    pub fn open(locator: &Locator) -> Result<Session, Error> {
        let transport = locator.open()?;
        let name = transport.name();
        let mut piv = Piv::new(transport);
        piv.select().map_err(|source| Error::Select { name, source })?;
        Ok(Session(piv))
    }
}

impl std::ops::Deref for Session {
    type Target = Piv<Box<dyn Transport>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.logout();
    }
}

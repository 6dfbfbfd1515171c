//! Where the agent's keys come from, and the guard that offers only listed keys, one request
//! at a time each.

use std::sync::Arc;
use std::time::Duration;

use proto::Transport;
use serde::Serialize;

/// A key the agent can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// Stable while the key stays: e.g. `reader:Virtual PCD 00 00`, `dir:/home/a/keys/alice`.
    pub id: String,
    pub label: String,
}

/// Where keys come from (readers, virtual key directories, keys in this process). The agent
/// never knows which.
pub trait KeyProvider: Send + Sync + 'static {
    /// The keys present now.
    fn list(&self) -> Vec<KeyRef>;
    /// Reach one of them. The transport is held while a request uses the key.
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String>;
    /// Whether opening or using key `id` may wait on a reader or a disk (see
    /// [`Transport::may_block`]); yes unless the provider knows better.
    fn may_block(&self, _id: &str) -> bool {
        true
    }
    /// Block until the keys present may have changed (a reader saw a card come or go) or
    /// `timeout` passed; the agent lists the keys after each return. `false`: this provider
    /// cannot watch, and the agent lists every `timeout` instead.
    fn wait_change(&self, _timeout: Duration) -> bool {
        false
    }
    /// Whether key `id` is among [`KeyProvider::list`]'s now (a provider with many keys
    /// answers this without listing them all).
    fn contains(&self, id: &str) -> bool {
        self.list().iter().any(|k| k.id == id)
    }
}

/// Keys handed to the agent by this process (tests, `ukey flows`, `ukey bench login`): id ->
/// transport. The list can change while the agent runs; each request gets a clone of the
/// transport.
pub struct FixedKeys<T> {
    keys: std::sync::Mutex<Vec<(String, T)>>,
    /// Where each id was last seen in `keys`: checked on use and rebuilt when the list changed,
    /// so finding one of 10,000 keys is not a scan of them all (a login looks twice).
    seen: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl<T> Default for FixedKeys<T> {
    fn default() -> Self {
        FixedKeys { keys: Default::default(), seen: Default::default() }
    }
}

impl<T> FixedKeys<T> {
    pub fn keys(&self) -> std::sync::MutexGuard<'_, Vec<(String, T)>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` of the key `id`, if it is in the list.
    fn with<R>(&self, id: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        let keys = self.keys();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let at = match seen.get(id) {
            Some(&i) if keys.get(i).is_some_and(|(k, _)| k == id) => Some(i),
            _ => {
                *seen = keys.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
                seen.get(id).copied()
            }
        };
        at.map(|i| f(&keys[i].1))
    }
}

impl<T: Transport + Clone + Send + 'static> KeyProvider for FixedKeys<T> {
    fn list(&self) -> Vec<KeyRef> {
        self.keys().iter().map(|(id, _)| KeyRef { id: id.clone(), label: id.clone() }).collect()
    }
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String> {
        let k = self.with(id, |k| k.clone()).ok_or_else(|| format!("no key {id}"))?;
        Ok(Box::new(k))
    }
    fn may_block(&self, id: &str) -> bool {
        self.with(id, |k| k.may_block()).unwrap_or(true)
    }
    fn contains(&self, id: &str) -> bool {
        self.with(id, |_| ()).is_some()
    }
}

/// The keys of a provider, reachable only while it lists them: a request cannot name a key
/// (a `dir:` path, a reader) the agent does not offer. A key is used by one request at a time
/// (its transport holds the key's turn until dropped): a last-try guard reads the count and
/// spends the try with no other request in between, so two requests at once cannot both
/// spend "the second-last" try.
pub(super) struct Listed(Arc<dyn KeyProvider>, Arc<Turns>);

impl Listed {
    /// The keys of `keys`, offered only while listed, one request at a time each.
    pub(super) fn new(keys: Arc<dyn KeyProvider>) -> Listed {
        Listed(keys, Arc::default())
    }
}

/// Whose turn each key is: ids of the keys in use.
#[derive(Default)]
pub(super) struct Turns {
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
    freed: std::sync::Condvar,
}

impl Turns {
    fn take(self: &Arc<Self>, id: &str) -> Turn {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(id) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(id.to_string());
        Turn { turns: self.clone(), id: id.to_string() }
    }
}

/// A key's turn, given back when dropped.
pub(super) struct Turn {
    turns: Arc<Turns>,
    id: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        self.turns.freed.notify_all();
    }
}

/// A key's transport holding its turn.
pub(super) struct Held {
    inner: Box<dyn Transport>,
    _turn: Turn,
}

impl Transport for Held {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, proto::TransportError> {
        self.inner.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, proto::TransportError> {
        self.inner.reset()
    }
    fn is_present(&mut self) -> bool {
        self.inner.is_present()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}

impl KeyProvider for Listed {
    fn list(&self) -> Vec<KeyRef> {
        self.0.list()
    }
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String> {
        if !self.0.contains(id) {
            return Err(format!("no key {id} is present"));
        }
        let turn = self.1.take(id);
        Ok(Box::new(Held { inner: self.0.open(id)?, _turn: turn }))
    }
    fn may_block(&self, id: &str) -> bool {
        self.0.may_block(id)
    }
    fn wait_change(&self, timeout: Duration) -> bool {
        self.0.wait_change(timeout)
    }
    fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

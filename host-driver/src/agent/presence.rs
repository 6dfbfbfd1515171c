//! The keys present: `GET /keys` and the `/events` WebSocket of keys coming and going.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::provider::{KeyProvider, KeyRef};
use super::state::{Agent, KeySummary};
use crate::Piv;

/// The version of the agent's HTTP API, in every `/keys` answer; ukey.js refuses another.
pub const API_VERSION: u32 = 1;

pub(super) fn summarize(keys: &dyn KeyProvider, k: &KeyRef) -> KeySummary {
    let mut s = KeySummary {
        id: k.id.clone(),
        label: k.label.clone(),
        serial: None,
        subject: None,
        not_after: None,
        pin_retries: None,
        pin_retries_total: None,
        error: None,
    };
    let info = keys.open(&k.id).map_err(|e| e.to_string()).and_then(|t| {
        let mut piv = Piv::new(t);
        crate::inspect(&mut piv, &k.label).map_err(|e| e.to_string())
    });
    match info {
        Ok(i) => {
            s.serial = i.serial.clone();
            s.pin_retries = i.pin_retries;
            s.pin_retries_total = i.pin_retries_total;
            if let Some(c) = i.auth_cert() {
                s.subject = Some(c.subject.clone());
                s.not_after = Some(c.not_after);
            }
        }
        Err(e) => s.error = Some(e),
    }
    s
}

pub(super) async fn list_keys(State(a): State<Arc<Agent>>) -> Response {
    let keys = a.keys.clone();
    let list = tokio::task::spawn_blocking(move || {
        keys.list().iter().map(|k| summarize(keys.as_ref(), k)).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(json!({"ok": true, "api": API_VERSION, "version": env!("CARGO_PKG_VERSION"), "keys": list})).into_response()
}

pub(super) async fn events_ws(State(a): State<Arc<Agent>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| events(socket, a))
}

pub(super) async fn events(mut socket: WebSocket, a: Arc<Agent>) {
    let mut rx = a.events.subscribe();
    let keys = a.keys.clone();
    let now = tokio::task::spawn_blocking(move || keys.list()).await.unwrap_or_default();
    let hello = json!({"event": "keys", "keys": now});
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    while let Ok(ev) = rx.recv().await {
        if socket.send(Message::text(ev.to_string())).await.is_err() {
            return;
        }
    }
}

pub(super) async fn present(a: &Agent) -> Option<BTreeMap<String, KeyRef>> {
    let keys = a.keys.clone();
    let list = tokio::task::spawn_blocking(move || keys.list()).await.ok()?;
    Some(list.into_iter().map(|k| (k.id.clone(), k)).collect())
}

/// Keys present at start are the baseline; events are the changes after it.
pub(super) async fn poll_presence(a: Arc<Agent>) {
    let Some(mut known) = present(&a).await else { return };
    loop {
        let (keys, poll) = (a.keys.clone(), a.config.poll);
        let started = tokio::time::Instant::now();
        let watched = tokio::task::spawn_blocking(move || keys.wait_change(poll)).await.unwrap_or(false);
        // A provider that cannot watch, or whose watch returned at once with nothing (the
        // reader service restarting), must not turn this loop into a spin.
        let floor = if watched { poll / 10 } else { poll };
        tokio::time::sleep_until(started + floor).await;
        let Some(now) = present(&a).await else { return };
        for (id, k) in &now {
            if !known.contains_key(id) {
                let _ = a.events.send(json!({"event": "inserted", "key": k}));
            }
        }
        for (id, k) in &known {
            if !now.contains_key(id) {
                let _ = a.events.send(json!({"event": "removed", "key": k}));
            }
        }
        known = now;
    }
}

//! What a rule answers when it says no: a kind, a stable code, a message (or a user-facing
//! [`Msg`]) and extra fields. No HTTP status: the JSON API maps the kind to one, the pages
//! to an error page, each in one function.

use serde_json::{json, Value};

use crate::enrollment::FieldProblem;
use crate::messages::Msg;
use crate::store::StoreError;

/// What kind of no it is: the adapters choose how to say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is not well formed (a field that is not base64, an unknown stage).
    Malformed,
    /// The caller is not known, or did not prove who it is: no session, not logged in, a
    /// wrong password, a key's answer that does not hold.
    Unauthenticated,
    /// Known, and not allowed.
    Forbidden,
    NotFound,
    /// Not now: the thing is elsewhere (an application at another stage, a certificate
    /// already revoked) or a choice must be made first.
    Conflict,
    /// More than the portal takes.
    TooLarge,
    /// A kind of content the portal does not take.
    UnsupportedType,
    /// Well formed, and wrong (a form's fields, a login name too long).
    Invalid,
    /// Too many requests or tries; `retry_after` says how long to wait when it is known.
    TooMany,
    /// The portal is busy or stopping: try again in a moment.
    Busy,
    /// Our own failure (the store, the CA): see the portal's log.
    Internal,
}

/// A refusal: kind, stable code, message (or a user-facing [`Msg`]), extra fields.
#[derive(Debug)]
pub struct Refusal {
    pub kind: Kind,
    pub code: &'static str,
    pub message: String,
    pub msg: Option<Msg>,
    pub extra: Value,
    /// The form fields refused, and why (each gets its message in the caller's language).
    pub fields: Vec<FieldProblem>,
}

impl Refusal {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { kind, code, message: message.into(), msg: None, extra: json!({}), fields: Vec::new() }
    }
    pub fn user(kind: Kind, msg: Msg) -> Refusal {
        Refusal { kind, code: msg.code(), message: String::new(), msg: Some(msg), extra: json!({}), fields: Vec::new() }
    }
    pub fn with(mut self, extra: Value) -> Refusal {
        self.extra = extra;
        self
    }
    /// A refused form: every wrong field.
    pub fn with_fields(mut self, fields: Vec<FieldProblem>) -> Refusal {
        self.fields = fields;
        self
    }

    /// No live session: the caller must start one first.
    pub fn no_session() -> Refusal {
        Refusal::new(Kind::Unauthenticated, "no_session", "no session: GET /api/session first")
    }

    /// Not logged in with a password.
    pub fn login_required() -> Refusal {
        Refusal::new(Kind::Unauthenticated, "login_required", "log in with your password first")
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        tracing::error!("store: {e}");
        Refusal::new(Kind::Internal, "internal", "internal error; see the portal's log")
    }
}

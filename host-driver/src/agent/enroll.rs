//! The agent's part of a certificate application: the key pair is generated ON the key and the
//! request is signed by it (the private key never exists anywhere else), and the certificate
//! the CA issued is written back — but only to the key that holds its private key.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use der::{Decode, Encode};
use proto::piv::Slot;
use proto::secret::Pin;
use proto::Transport;
use serde::Deserialize;
use serde_json::json;

use super::keyops::{key_error, on_key, refuse, request_lang, with_pin, KeyError};
use super::provider::KeyProvider;
use super::state::Agent;
use crate::piv::{OldCertificate, Regenerated};
use crate::{MgmtKey, Piv, PivError};

/// What a CSR names when the page gives no subject (the CA names the certificate anyway).
const DEFAULT_SUBJECT: &str = "CN=ukey certificate application";

#[derive(Deserialize)]
pub(super) struct KeypairRequest {
    key_id: String,
    pin: Pin,
    /// The user confirmed spending the PIN's last try (see [`with_pin`]).
    #[serde(default)]
    last_try: bool,
    /// Overwrite a key pair whose certificate is still in 9A.
    #[serde(default)]
    replace: bool,
    subject: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct InstallRequest {
    key_id: String,
    pin: Pin,
    #[serde(default)]
    last_try: bool,
    /// The issued certificate, DER, base64.
    certificate: String,
}

fn authenticate(piv: &mut Piv<Box<dyn Transport>>, key: &MgmtKey) -> Result<(), KeyError> {
    piv.authenticate_auto(key).map_err(|e| match e {
        PivError::NotAuthorized { .. } | PivError::Card { .. } | PivError::Malformed { .. } => KeyError::ManagementKey,
        other => KeyError::key(other),
    })
}

/// ATTEST of 9A and the F9 certificate that signed it, both DER.
type Attestation = (Vec<u8>, Vec<u8>);

/// A key pair generated in 9A: its CSR, and the key's proof that the pair was generated there.
struct KeyPair {
    csr: Vec<u8>,
    /// `None` on a card without attestation (the portal then refuses the application, and
    /// says why).
    attestation: Option<Attestation>,
}

/// The card's attestation of the key in 9A, if it can give one.
fn attestation_of(piv: &mut Piv<Box<dyn Transport>>) -> Result<Option<Attestation>, KeyError> {
    let attestation = match piv.attest(Slot::Authentication) {
        Ok(a) => a,
        Err(e @ (PivError::NotSupported { .. } | PivError::Card { .. } | PivError::Empty { .. })) => {
            tracing::info!("the key gives no attestation of 9A: {e}");
            return Ok(None);
        }
        Err(e) => return Err(KeyError::key(e)),
    };
    match piv.read_certificate(Slot::Attestation).map_err(KeyError::key)? {
        Some(f9) => Ok(Some((attestation, f9))),
        None => {
            tracing::info!("the key attests 9A but holds no F9 certificate");
            Ok(None)
        }
    }
}

fn keypair_blocking(keys: &dyn KeyProvider, mgmt: &MgmtKey, req: &KeypairRequest) -> Result<KeyPair, KeyError> {
    let subject = req.subject.as_deref().unwrap_or(DEFAULT_SUBJECT);
    // The PIN first: replacing a key pair (and so its certificate) is the holder's decision.
    with_pin(keys, &req.key_id, &req.pin, req.last_try, |piv| {
        authenticate(piv, mgmt)?;
        let old = if req.replace { OldCertificate::RemoveIfStale } else { OldCertificate::RefuseIfPresent };
        let public = match piv.regenerate(Slot::Authentication, None, None, old) {
            Ok(Regenerated { public, stale_certificate: None | Some(Ok(())) }) => public,
            Ok(Regenerated { stale_certificate: Some(Err(e)), .. }) => return Err(KeyError::key(e)),
            Err(PivError::SlotInUse { .. }) => return Err(KeyError::SlotInUse),
            Err(e) => return Err(KeyError::key(e)),
        };
        let csr =
            crate::csr::certificate_request(piv, Slot::Authentication, &public, subject).map_err(|e| match e {
                PivError::Input(m) => KeyError::BadInput(m),
                other => KeyError::key(other),
            })?;
        Ok(KeyPair { csr, attestation: attestation_of(piv)? })
    })
}

/// The certificate's public key, as an ECDSA P-256 verifying key.
fn certificate_key(der: &[u8]) -> Result<p256::ecdsa::VerifyingKey, KeyError> {
    let bad = |e: String| KeyError::BadInput(format!("certificate: {e}"));
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| bad(e.to_string()))?;
    use p256::pkcs8::DecodePublicKey;
    p256::ecdsa::VerifyingKey::from_public_key_der(&spki).map_err(|e| bad(format!("not a P-256 key ({e})")))
}

fn install_blocking(keys: &dyn KeyProvider, mgmt: &MgmtKey, req: &InstallRequest) -> Result<(), KeyError> {
    let der =
        B64.decode(req.certificate.trim()).map_err(|_| KeyError::BadInput("certificate must be base64 DER".into()))?;
    let public = certificate_key(&der)?;
    with_pin(keys, &req.key_id, &req.pin, req.last_try, |piv| {
        // Proof that 9A holds the certificate's private key: sign a fresh digest with it.
        let mut digest = [0u8; 32];
        use p256::elliptic_curve::rand_core::{OsRng, RngCore};
        OsRng.fill_bytes(&mut digest);
        let sig = piv.sign_digest(Slot::Authentication, &digest).map_err(|e| match e {
            PivError::Card { .. } => KeyError::KeyMismatch,
            other => KeyError::key(other),
        })?;
        let sig = p256::ecdsa::Signature::from_slice(&sig.raw).map_err(|_| KeyError::KeyMismatch)?;
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        public.verify_prehash(&digest, &sig).map_err(|_| KeyError::KeyMismatch)?;
        authenticate(piv, mgmt)?;
        piv.write_certificate(Slot::Authentication, &der).map_err(KeyError::key)
    })
}

/// `POST /enroll/keypair {key_id, pin, replace?, subject?}` -> `{csr, attestation,
/// attestation_f9}` (DER, base64; the last two null when the key cannot attest), what the
/// portal's application submit takes.
pub(super) async fn keypair(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<KeypairRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "expected {key_id, pin, replace?, subject?}");
    };
    let lang = request_lang(&headers);
    let (mgmt, key_id) = (a.config.management_key.clone(), req.key_id.clone());
    match on_key(&a.keys, &key_id, move |keys| keypair_blocking(keys, &mgmt, &req)).await {
        Some(Ok(pair)) => {
            tracing::info!("key pair generated in 9A of {key_id}");
            let (attestation, f9) = match &pair.attestation {
                Some((a, f)) => (Some(B64.encode(a)), Some(B64.encode(f))),
                None => (None, None),
            };
            Json(json!({
                "ok": true,
                "code": "keypair",
                "csr": B64.encode(pair.csr),
                "attestation": attestation,
                "attestation_f9": f9,
            }))
            .into_response()
        }
        Some(Err(e)) => key_error(e, lang, &key_id),
        None => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key task failed"),
    }
}

/// `POST /enroll/install {key_id, pin, certificate}`.
pub(super) async fn install(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<InstallRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "expected {key_id, pin, certificate}");
    };
    let lang = request_lang(&headers);
    let (mgmt, key_id) = (a.config.management_key.clone(), req.key_id.clone());
    match on_key(&a.keys, &key_id, move |keys| install_blocking(keys, &mgmt, &req)).await {
        Some(Ok(())) => {
            tracing::info!("certificate written to 9A of {key_id}");
            let message = match lang {
                crate::lang::Lang::Zh => "证书已写入USB-Key",
                crate::lang::Lang::En => "The certificate is now on the USB-Key",
            };
            Json(json!({"ok": true, "code": "installed", "message": message})).into_response()
        }
        Some(Err(e)) => key_error(e, lang, &key_id),
        None => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key task failed"),
    }
}

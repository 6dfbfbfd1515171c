//! Payment for an application, WeChat Pay or Alipay, through a simulated provider in test
//! mode. What matters is the portal's side of a real provider: it opens a payment, the provider
//! later calls back with a notification signed by a shared secret (HMAC-SHA256 here), and the
//! portal accepts a notification once — providers deliver them again until they get an
//! answer, so a repeat must change nothing.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header carrying the notification's signature (hex HMAC-SHA256 of the body).
pub const SIGNATURE_HEADER: &str = "x-pay-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Wechat,
    Alipay,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Wechat => "wechat",
            Method::Alipay => "alipay",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        [Method::Wechat, Method::Alipay].into_iter().find(|m| m.as_str() == s)
    }
    /// 微信 / 支付宝
    pub fn name_zh(self) -> &'static str {
        match self {
            Method::Wechat => "微信",
            Method::Alipay => "支付宝",
        }
    }
    pub fn name_en(self) -> &'static str {
        match self {
            Method::Wechat => "WeChat Pay",
            Method::Alipay => "Alipay",
        }
    }
}

/// What the provider tells the portal when a payment completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub payment_id: String,
    /// The provider's own transaction number.
    pub provider_txn: String,
    pub amount_fen: i64,
    /// `SUCCESS` is the only status that moves an application on.
    pub status: String,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// The signature a provider puts on `body`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

/// Whether `signature` (hex) is the provider's over `body`; compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else { return false };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

/// The simulated provider (test mode): it "takes the money" for a payment and produces the
/// signed notification a real provider would send.
pub fn simulate_success(secret: &[u8], payment_id: &str, amount_fen: i64) -> (Vec<u8>, String) {
    let n = Notification {
        payment_id: payment_id.into(),
        provider_txn: format!("SIM{}", hex::encode(rand::random::<[u8; 8]>())),
        amount_fen,
        status: "SUCCESS".into(),
    };
    let body = serde_json::to_vec(&n).expect("a notification serializes");
    let sig = sign(secret, &body);
    (body, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_verify_only_with_the_secret_and_unchanged() {
        let (body, sig) = simulate_success(b"secret", "p1", 20000);
        assert!(verify(b"secret", &body, &sig));
        assert!(!verify(b"other", &body, &sig));
        let mut tampered = body.clone();
        let at = tampered.iter().position(|&b| b == b'2').unwrap();
        tampered[at] = b'9';
        assert!(!verify(b"secret", &tampered, &sig));
        assert!(!verify(b"secret", &body, "zz"));
        let n: Notification = serde_json::from_slice(&body).unwrap();
        assert_eq!((n.payment_id.as_str(), n.amount_fen, n.status.as_str()), ("p1", 20000, "SUCCESS"));
    }
}

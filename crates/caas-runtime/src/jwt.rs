//! Operator authentication: HS256 JSON Web Tokens, verified without I/O. One implementation for
//! every place that issues or checks them: the gateway (socket.io and REST), the campaign API
//! on its own port, `caasctl token` and the load generator.
//!
//! A token is `base64url(header).base64url(claims).base64url(HMAC-SHA256(secret, first two))`.
//! The header must say `"alg": "HS256"`; anything else (`none`, `RS256`, a missing `alg`) is
//! refused before the signature is even looked at, which closes the classic algorithm
//! confusion attacks. The claims must carry `sub` (operator id), `tenant`, `role`
//! (`operator` or `admin`) and `exp` (seconds since the epoch, in the future); `nbf`, when
//! present, must have passed. The clock is a parameter, so expiry is unit-tested.
//!
//! `caasctl token` issues tokens for the local stack.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: i64 = 30;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers conversations, takes over from the bot, assigns conversations to itself.
    Operator,
    /// Everything an operator does, plus assigning others, export and erasure.
    Admin,
}

impl Role {
    /// `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The verified identity of a connected operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The operator id (`sub`).
    pub sub: String,
    /// The tenant the operator belongs to; it only ever sees this tenant.
    pub tenant: String,
    /// Its role.
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    /// Whether the operator is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why a token was refused. The messages are shown to the client, so they say what is wrong
/// without echoing the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was sent.
    #[error("authentication required: send a JWT as auth.token (socket.io) or an Authorization: Bearer header (REST)")]
    Missing,
    /// No secret is configured, so nothing can be verified.
    #[error("no CAAS_JWT_SECRET is configured here; every token is refused")]
    NotConfigured,
    /// Not three base64url parts, or parts that are not JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm (`none` included).
    #[error("token algorithm {0:?} is not accepted; only HS256 is")]
    Algorithm(String),
    /// The signature does not match: another secret, or a modified token.
    #[error("invalid token signature")]
    Signature,
    /// A required claim is missing or has the wrong type or value.
    #[error("invalid token claims: {0}")]
    Claims(String),
    /// `exp` has passed.
    #[error("token expired; get a new one")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet (nbf is in the future)")]
    NotYetValid,
}

impl AuthError {
    /// A bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::NotConfigured => "not_configured",
            AuthError::Malformed(_) => "malformed",
            AuthError::Algorithm(_) => "algorithm",
            AuthError::Signature => "signature",
            AuthError::Claims(_) => "claims",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<serde_json::Value>,
    tenant: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
}

/// Verify `token` with `secret` at `now_seconds` (Unix time).
pub fn verify(token: &str, secret: &[u8], now_seconds: i64) -> Result<Claims, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::NotConfigured);
    }
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token);
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(claims_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "expected three dot-separated base64url parts",
        ));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_part)
        .map_err(|_| AuthError::Malformed("the header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| AuthError::Malformed("the header is not a JSON object"))?;
    match header.alg.as_deref() {
        Some("HS256") => {}
        Some(other) => return Err(AuthError::Algorithm(other.to_string())),
        None => return Err(AuthError::Algorithm(String::new())),
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| AuthError::Malformed("the signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AuthError::NotConfigured)?;
    mac.update(header_part.as_bytes());
    mac.update(b".");
    mac.update(claims_part.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::Signature)?;

    let claims_bytes = URL_SAFE_NO_PAD
        .decode(claims_part)
        .map_err(|_| AuthError::Malformed("the claims are not base64url"))?;
    let raw: RawClaims = serde_json::from_slice(&claims_bytes)
        .map_err(|_| AuthError::Malformed("the claims are not a JSON object"))?;
    let sub = required_string(raw.sub, "sub")?;
    let tenant = required_string(raw.tenant, "tenant")?;
    if tenant.contains(':') {
        return Err(AuthError::Claims("tenant must not contain ':'".to_string()));
    }
    let role = match required_string(raw.role, "role")?.as_str() {
        "operator" => Role::Operator,
        "admin" => Role::Admin,
        other => {
            return Err(AuthError::Claims(format!(
                "role {other:?} is not operator or admin"
            )))
        }
    };
    let exp = required_seconds(raw.exp, "exp")?
        .ok_or_else(|| AuthError::Claims("exp is required".to_string()))?;
    if now_seconds > exp + LEEWAY_SECONDS {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = required_seconds(raw.nbf, "nbf")? {
        if now_seconds + LEEWAY_SECONDS < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok(Claims {
        sub,
        tenant,
        role,
        exp,
    })
}

fn required_string(value: Option<serde_json::Value>, name: &str) -> Result<String, AuthError> {
    match value {
        Some(serde_json::Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(AuthError::Claims(format!(
            "{name} must be a non-empty string"
        ))),
        None => Err(AuthError::Claims(format!("{name} is required"))),
    }
}

fn required_seconds(
    value: Option<serde_json::Value>,
    name: &str,
) -> Result<Option<i64>, AuthError> {
    match value {
        None => Ok(None),
        Some(serde_json::Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float as i64))
            .map(Some)
            .ok_or_else(|| AuthError::Claims(format!("{name} must be seconds since the epoch"))),
        Some(_) => Err(AuthError::Claims(format!(
            "{name} must be a number of seconds since the epoch"
        ))),
    }
}

/// Sign claims into an HS256 token (tools and tests; the services never issue tokens).
pub fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{body}.{signature}")
}

/// Now, in seconds since the epoch (the clock `verify` is given in the services).
pub fn now_seconds() -> i64 {
    crate::clock::now_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW: i64 = 1_800_000_000;

    fn claims() -> serde_json::Value {
        json!({"sub": "op-1", "tenant": "acme", "role": "operator", "exp": NOW + 3600})
    }

    #[test]
    fn a_signed_token_verifies() {
        let token = sign(&claims(), SECRET);
        let verified = verify(&token, SECRET, NOW).unwrap();
        assert_eq!(verified.sub, "op-1");
        assert_eq!(verified.tenant, "acme");
        assert_eq!(verified.role, Role::Operator);
        assert_eq!(
            verify(&format!("Bearer {token}"), SECRET, NOW).unwrap(),
            verified
        );
    }

    #[test]
    fn another_secret_is_a_signature_error() {
        let token = sign(&claims(), b"other");
        assert_eq!(verify(&token, SECRET, NOW), Err(AuthError::Signature));
    }

    #[test]
    fn alg_none_is_refused_even_without_signature() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let error = verify(&format!("{header}.{body}."), SECRET, NOW).unwrap_err();
        assert_eq!(error, AuthError::Algorithm("none".to_string()));
        assert!(error.to_string().contains("only HS256"));
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert!(matches!(
            verify(&format!("{header}.{body}.x"), SECRET, NOW),
            Err(AuthError::Algorithm(_))
        ));
    }

    #[test]
    fn expiry_is_checked_with_leeway() {
        let mut expired = claims();
        expired["exp"] = json!(NOW - LEEWAY_SECONDS - 1);
        assert_eq!(
            verify(&sign(&expired, SECRET), SECRET, NOW),
            Err(AuthError::Expired)
        );
        expired["exp"] = json!(NOW - 1);
        assert!(verify(&sign(&expired, SECRET), SECRET, NOW).is_ok());
        let mut early = claims();
        early["nbf"] = json!(NOW + 600);
        assert_eq!(
            verify(&sign(&early, SECRET), SECRET, NOW),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn claims_are_required_and_typed() {
        for (field, value) in [
            ("sub", json!(null)),
            ("tenant", json!("")),
            ("tenant", json!("a:b")),
            ("role", json!("root")),
            ("exp", json!("tomorrow")),
        ] {
            let mut bad = claims();
            bad[field] = value;
            let error = verify(&sign(&bad, SECRET), SECRET, NOW).unwrap_err();
            assert!(matches!(error, AuthError::Claims(_)), "{field}: {error:?}");
        }
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(matches!(
            verify(&sign(&no_exp, SECRET), SECRET, NOW),
            Err(AuthError::Claims(_))
        ));
    }

    #[test]
    fn malformed_tokens_and_missing_secrets_are_clear() {
        assert_eq!(verify("", SECRET, NOW), Err(AuthError::Missing));
        assert!(matches!(
            verify("a.b", SECRET, NOW),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verify("!!.b.c", SECRET, NOW),
            Err(AuthError::Malformed(_))
        ));
        assert_eq!(
            verify(&sign(&claims(), SECRET), b"", NOW),
            Err(AuthError::NotConfigured)
        );
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let token = sign(&claims(), SECRET);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut admin = claims();
        admin["role"] = json!("admin");
        parts[1] = URL_SAFE_NO_PAD.encode(admin.to_string());
        assert_eq!(
            verify(&parts.join("."), SECRET, NOW),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_header_and_claims() {
        // Computed independently: python3 -c "import hmac,hashlib,base64; print(base64.
        // urlsafe_b64encode(hmac.new(b'k', b'<header>.<claims>', hashlib.sha256).digest()))"
        assert_eq!(
            sign(&json!({"a": 1}), b"k"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhIjoxfQ.HYfzqBpLbCOo950TeHdytWxg8UHtAmEQCW7ITVky6Gc"
        );
    }
}

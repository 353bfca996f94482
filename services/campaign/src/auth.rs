//! Who is calling the REST API.
//!
//! The API never verifies tokens itself when merged into another server: it reads a [`Caller`]
//! from the request's extensions, put there by that server's authentication (the gateway's
//! JWT middleware). On the campaign service's own port, [`bearer`] does that job: it verifies
//! an HS256 JWT (`sub`, `tenant`, `role` of `operator` or `admin`, `exp`) with
//! `CAAS_JWT_SECRET`, the same tokens the gateway accepts.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use caas_runtime::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::api::ApiError;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerRole {
    /// Reads campaigns, recipients and consents.
    Operator,
    /// Also uploads audiences and creates, pauses, resumes and cancels campaigns.
    Admin,
}

impl CallerRole {
    /// `operator` or `admin`; anything else is `None`.
    pub fn parse(role: &str) -> Option<Self> {
        match role {
            "operator" => Some(CallerRole::Operator),
            "admin" => Some(CallerRole::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller of a request: insert one into the request's extensions
/// (`request.extensions_mut().insert(Caller { .. })`) before the campaign routes run. A
/// request without one is answered 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant; the caller only ever sees and changes this tenant's campaigns.
    pub tenant: String,
    /// The operator id (the token's `sub`), recorded on the commands.
    pub operator_id: String,
    /// What the caller may do.
    pub role: CallerRole,
}

impl Caller {
    /// Refuse unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == CallerRole::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "managing campaigns and audiences needs the admin role".to_string(),
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Unauthorized(
                "authentication required: send Authorization: Bearer <jwt>".to_string(),
            )
        })
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    role: String,
    exp: i64,
}

/// Verify an HS256 token at `now_seconds`; the error says what is wrong.
pub fn verify(token: &str, secret: &[u8], now_seconds: i64) -> Result<Caller, String> {
    let mut parts = token.trim().split('.');
    let (Some(header_part), Some(claims_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token: expected three dot-separated parts".to_string());
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header_part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("malformed token header")?;
    if header["alg"] != "HS256" {
        return Err("only HS256 tokens are accepted".to_string());
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| "malformed token signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "unusable secret")?;
    mac.update(header_part.as_bytes());
    mac.update(b".");
    mac.update(claims_part.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| "invalid token signature")?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(claims_part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the token needs sub, tenant, role and exp claims")?;
    if now_seconds > claims.exp + 30 {
        return Err("token expired".to_string());
    }
    if claims.tenant.is_empty() || claims.tenant.contains(':') {
        return Err("invalid tenant claim".to_string());
    }
    let role = CallerRole::parse(&claims.role)
        .ok_or_else(|| format!("role {:?} is not operator or admin", claims.role))?;
    Ok(Caller {
        tenant: claims.tenant,
        operator_id: claims.sub,
        role,
    })
}

/// Middleware for the service's own port: a valid `Authorization: Bearer <jwt>` becomes a
/// [`Caller`]; anything else is 401 (503 when no secret is configured).
pub async fn bearer(State(secret): State<Secret>, mut request: Request, next: Next) -> Response {
    if secret.expose().is_empty() {
        return ApiError::Unavailable(
            "CAAS_JWT_SECRET is not set; use the API through the gateway".to_string(),
        )
        .into_response();
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        });
    let Some(token) = token else {
        return ApiError::Unauthorized(
            "authentication required: send Authorization: Bearer <jwt>".to_string(),
        )
        .into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default();
    match verify(token, secret.expose().as_bytes(), now) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(reason) => ApiError::Unauthorized(reason).into_response(),
    }
}

/// Sign claims into an HS256 token (tests and tools).
pub fn sign(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{body}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_verify_and_refusals_say_why() {
        let secret = b"s3cret";
        let token = sign(
            &json!({"sub": "op-1", "tenant": "acme", "role": "admin", "exp": 2000}),
            secret,
        );
        assert_eq!(
            verify(&token, secret, 1000).unwrap(),
            Caller {
                tenant: "acme".into(),
                operator_id: "op-1".into(),
                role: CallerRole::Admin
            }
        );
        assert!(verify(&token, b"other", 1000)
            .unwrap_err()
            .contains("signature"));
        assert!(verify(&token, secret, 3000)
            .unwrap_err()
            .contains("expired"));
        let root = sign(
            &json!({"sub": "x", "tenant": "acme", "role": "root", "exp": 2000}),
            secret,
        );
        assert!(verify(&root, secret, 1000).unwrap_err().contains("root"));
        assert!(verify("a.b", secret, 1000).unwrap_err().contains("three"));
    }
}

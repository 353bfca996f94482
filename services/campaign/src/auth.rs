//! Who is calling the REST API.
//!
//! The API never verifies tokens itself when merged into another server: it reads a [`Caller`]
//! from the request's extensions, put there by that server's authentication (the gateway's
//! JWT middleware). On the campaign service's own port, [`bearer`] does that job with the same
//! rules ([`caas_runtime::jwt`]) and `CAAS_JWT_SECRET`: the tokens the gateway accepts.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use caas_runtime::{jwt, Secret};

use crate::api::ApiError;

/// Sign a token (tests and tools): the shared implementation.
pub use jwt::sign;

/// What a caller may do: an operator reads campaigns, recipients and consents; an admin also
/// uploads audiences and creates, pauses, resumes and cancels campaigns.
pub type CallerRole = jwt::Role;

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

impl From<jwt::Claims> for Caller {
    fn from(claims: jwt::Claims) -> Self {
        Caller {
            tenant: claims.tenant,
            operator_id: claims.sub,
            role: claims.role,
        }
    }
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
        .unwrap_or_default();
    match jwt::verify(token, secret.expose().as_bytes(), jwt::now_seconds()) {
        Ok(claims) => {
            request.extensions_mut().insert(Caller::from(claims));
            next.run(request).await
        }
        Err(error) => ApiError::Unauthorized(error.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_verified_token_becomes_the_caller() {
        let secret = b"s3cret";
        let token = sign(
            &json!({"sub": "op-1", "tenant": "acme", "role": "admin", "exp": 2000}),
            secret,
        );
        let claims = jwt::verify(&token, secret, 1000).unwrap();
        assert_eq!(
            Caller::from(claims),
            Caller {
                tenant: "acme".into(),
                operator_id: "op-1".into(),
                role: CallerRole::Admin
            }
        );
    }
}

//! Operator authentication: the shared HS256 JWT rules ([`caas_runtime::jwt`]), under the name
//! the gateway's modules and tests use.

pub use caas_runtime::jwt::*;

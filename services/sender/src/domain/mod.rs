//! The sender's decisions, pure: no I/O, no clock (time is a parameter), so every rule is
//! unit-tested.
//!
//! - [`window`]: may this content go out now (the 24-hour customer-service window)?
//! - [`payload`]: the provider request for a command (WhatsApp Cloud API body, RBM
//!   AgentMessage), or why the content cannot be sent on that channel.
//! - [`answer`]: what a provider's answer means: accepted, rate limited, worth retrying,
//!   permanently refused, or unknown.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`bucket`]: the token bucket that paces each sending number (the Redis script runs the
//!   same arithmetic).
//! - [`claim`]: what to do with a command the idempotency ledger already knows.

pub mod answer;
pub mod backoff;
pub mod bucket;
pub mod claim;
pub mod payload;
pub mod window;

//! The chatbot's pure core: no I/O, no clock (time comes with each event).
//!
//! - [`flow`]: the flow file format, parsed and validated into [`flow::TenantFlows`], with
//!   errors that name the file, the flow and the step.
//! - [`session`]: a conversation's state between events.
//! - [`engine`]: event + session + flows → replies + new session.
//! - [`render`]: `{{variables}}` in texts and menus as message content per channel.

pub mod engine;
pub mod flow;
pub mod render;
pub mod session;

//! The pure decisions of the campaign service: no I/O, no clock of their own (`now` is a
//! parameter), so every rule is unit-tested exhaustively.
//!
//! - [`phone`]: a recipient's number in the form each channel's conversation keys use;
//! - [`csv`]: a streaming CSV reader that keeps line numbers and bounded memory;
//! - [`audience`]: CSV header and rows → recipients (valid or with the reason they are not);
//! - [`template`]: per-recipient `{{column}}` parameters;
//! - [`window`]: start time, end time and allowed sending hours in the campaign's timezone;
//! - [`rate`]: the pacing per sending number and per campaign, shared fairly;
//! - [`status`]: recipient statuses, their order and the counts reported on
//!   `campaign.events.v1`;
//! - [`lifecycle`]: which command is allowed in which campaign state;
//! - [`consent`]: STOP / START keywords per tenant and language, and the confirmations;
//! - [`ids`]: the deterministic ids (command ids, event ids).

pub mod audience;
pub mod consent;
pub mod csv;
pub mod ids;
pub mod lifecycle;
pub mod phone;
pub mod rate;
pub mod status;
pub mod template;
pub mod window;

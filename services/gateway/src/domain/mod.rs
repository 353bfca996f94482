//! The gateway's decisions, without I/O: which rooms an event goes to and with what payload
//! ([`fanout`]), what an operator's action produces ([`actions`]), room names and tenant
//! checks ([`rooms`]), the JSON shapes operators see ([`views`]), and the event explorer's
//! search rules and summaries ([`explorer`]), and which browser origins may call it
//! ([`origin`]).

pub mod actions;
pub mod explorer;
pub mod fanout;
pub mod origin;
pub mod rooms;
pub mod views;

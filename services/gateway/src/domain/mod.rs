//! The gateway's decisions, without I/O: which rooms an event goes to and with what payload
//! ([`fanout`]), what an operator's action produces ([`actions`]), room names and tenant
//! checks ([`rooms`]), and the JSON shapes operators see ([`views`]).

pub mod actions;
pub mod fanout;
pub mod rooms;
pub mod views;

//! The logger's pure logic: no I/O, no clock (times are parameters), tested without a
//! database.

pub mod docs;
pub mod event;
pub mod plan;
pub mod status;

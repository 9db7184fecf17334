//! One module per command (or family of commands): its arguments, the call into the engine
//! (or the client of a running server), and what it prints.

pub mod embed;
pub mod index;
pub mod memory;
pub mod migrate;
pub mod models;
pub mod nearest;
pub mod ops;
pub mod search;
pub mod serve;
pub mod snapshot;
pub mod tasks;
pub mod transfer;

//! The parts of the command line that another binary of the workspace (`mnemo-bench`) shares
//! with `mnemo`: the arguments that say where the model and the store are, and opening them.

pub mod args;
pub mod service;

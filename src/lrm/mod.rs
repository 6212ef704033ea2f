//! Local resource manager: a sans-IO state machine (spec section 4).
//! See README.md.

pub mod daemon;
pub mod status;

pub use daemon::{
    log_step, CommandRequest, Executor, Lrm, LrmAction, LrmInput, LrmOutput, LrmStep, NodeShutdown,
};
pub use status::{LrmMode, LrmState, LrmStatus};

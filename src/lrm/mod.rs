//! Local resource manager: a sans-IO state machine (spec section 4).
//! See README.md.

pub mod daemon;
pub mod lock;
pub mod status;

pub use daemon::{
    log_step, AgentLock, CommandRequest, Executor, LockPort, Lrm, LrmAction, LrmInput, LrmOutput,
    LrmStep, NodeShutdown,
};
pub use lock::agent_lock;
pub use status::{LrmMode, LrmState, LrmStatus};

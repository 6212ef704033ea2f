//! Notifications (issue 13): history events sent to webhooks and
//! executable hooks by the Raft leader, at least once and in order per
//! target.
//!
//! * [`config`]: the `notifications` document (targets, event classes,
//!   validation naming the field) and the per-target cursor documents.
//! * [`plan`]: the sans-IO decisions (what is queued, retry timing, what
//!   the cursor becomes and when it is written).
//! * [`event`]: the event as a hook's environment.
//!
//! The shell is `daemon/notify_task.rs` (leader only) and
//! `daemon/notify_send.rs` (HTTP and process I/O); the API and CLI verbs
//! are `api/notify.rs` and `node_cli/notify.rs`.

pub mod config;
pub mod event;
pub mod plan;

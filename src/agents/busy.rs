//! One operation at a time per agent: a start, stop or migrate that arrives
//! while another runs gets `Busy` (the LRM retries it) instead of waiting.

use std::sync::{Mutex, MutexGuard, TryLockError};

use super::AgentError;

/// The per-agent operation lock.
#[derive(Debug, Default)]
pub(crate) struct OperationLock(Mutex<()>);

impl OperationLock {
    /// Takes the lock for an operation on `resource`, or reports `Busy`.
    /// A poisoned lock only means an earlier operation panicked; the agent's
    /// state lives in the service and its files, so the lock is reusable.
    pub(crate) fn try_acquire(&self, resource: &str) -> Result<MutexGuard<'_, ()>, AgentError> {
        match self.0.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => Err(AgentError::Busy {
                resource: resource.to_string(),
            }),
        }
    }
}

//! The lock manager's errors.
//!
//! A conflict is not an error: `try_acquire` answers it as a value, `acquire` waits it out.
//! These are the requests that can never be granted as asked, and the snapshot file failing.

use std::path::PathBuf;

use fugue_core::Pattern;

/// Why a lock request or a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A write claim on a `common` path while a parallel phase runs.
    #[error(
        "failed to lock `{claim}` for writing for `{owner}`: it overlaps the common path `{common}`, which is read-only while a parallel phase runs; move the change to a serial phase or claim the path as a read"
    )]
    CommonReadOnly {
        /// The requesting owner.
        owner: String,
        /// The refused write claim.
        claim: Pattern,
        /// The common pattern it overlaps.
        common: Pattern,
    },
    /// The owner already holds a grant.
    #[error("failed to lock for `{owner}`: it already holds locks; release them first (an owner acquires all its claims at once)")]
    AlreadyHolds {
        /// The owner.
        owner: String,
    },
    /// The owner already waits for a grant.
    #[error("failed to lock for `{owner}`: it is already waiting for locks; one request per owner at a time")]
    AlreadyQueued {
        /// The owner.
        owner: String,
    },
    /// The owner was released while its request waited.
    #[error("the lock request of `{owner}` was cancelled: its owner was released while it waited")]
    Cancelled {
        /// The owner.
        owner: String,
    },
    /// The lock snapshot could not be read.
    #[error("failed to read {}: {source}", path.display())]
    Read {
        /// The snapshot file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The lock snapshot is not a valid `RESOURCE_LOCKS.json`.
    #[error(
        "failed to read {}: {detail}; fix the file or delete it (it is a snapshot: deleting it forgets the locks it lists)",
        path.display()
    )]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The lock snapshot could not be written. The in-memory locks are authoritative: a grant
    /// that failed to persist was undone; a release stands and the file is rewritten on the
    /// next change.
    #[error("failed to write {}: {source}; check that the state directory is writable", path.display())]
    Write {
        /// The snapshot file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

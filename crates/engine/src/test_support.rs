//! Builders shared by the engine's unit tests: ids and journal records at chosen times.

use fugue_core::TaskId;

use crate::events::Event;
use crate::journal::Record;

pub(crate) fn id(s: &str) -> TaskId {
    TaskId::new(s).expect("id")
}

/// A record `ms` milliseconds after a fixed instant.
pub(crate) fn rec(seq: u64, ms: u64, event: Event) -> Record {
    let ts = fugue_core::time::rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000 + ms));
    Record { seq, ts, event }
}

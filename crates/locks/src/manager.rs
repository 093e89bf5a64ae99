//! The lock manager: all-or-nothing grants, FIFO waiting, release, persistence.
//!
//! One table behind one mutex holds every request, granted or waiting. Granted claims sit in
//! the `held` trie, waiting ones in the `queued` trie, each entry pointing back at its request
//! (ids grow monotonically, so an id is also a place in the queue). A request is granted when
//! none of its claims conflicts with a held claim *and* none conflicts with a request that has
//! waited longer: a later request may overtake earlier waiters it does not conflict with, but
//! never one it does, so every waiter is granted once the holders ahead of it release. All of an
//! owner's claims are granted in one step or not at all, and an owner holds at most one grant,
//! so nobody holds some locks while waiting for others: there is no deadlock to detect.
//!
//! `try_acquire` answers at once (granted, or the conflicts with their holders); `acquire`
//! queues the request and awaits a oneshot channel. Every change that can unblock a waiter — a
//! release, a cancelled wait, a refused waiter — re-scans the queue in FIFO order and grants
//! what it can, sending each grant down its waiter's channel: waiting is notification, never
//! polling. A dropped `acquire` future takes its request out of the queue (or gives back a
//! grant it never saw), so cancellation leaks nothing.
//!
//! After every change to the held set the table is written to the store (`RESOURCE_LOCKS.json`)
//! when there is one; without a store the manager runs purely in memory. A manager switched to
//! [deferred](LockManager::deferred) persistence only marks the table changed and writes it on
//! [`LockManager::flush`]: a run's engine flushes it with its other state files, because a
//! snapshot per grant and per release (a temp file renamed over the old one, about a
//! millisecond each on an ext4 disk) was the largest per-task cost of short tasks. The file is
//! never the truth while the run lives (this table is), and after a crash every record of the
//! dead run is reclaimed whatever the file says, so a lagging snapshot loses nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fugue_core::Pattern;
use fugue_core::state::{LockMode, LockRecord, ResourceLocks};
use tokio::sync::oneshot;

use crate::claim::{Claim, ClaimSet, LockPolicy, Resource, SERIAL_PREFIX};
use crate::error::LockError;
use crate::run_lock::RunInfo;
use crate::store::{LockStore, StaleLock, partition};
use crate::trie::{FxMap, Trie};

/// A granted request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Who holds it.
    pub owner: String,
    /// Every claim granted: the paths and the serial classes they pulled in.
    pub claims: Vec<Claim>,
    /// When it was granted (RFC 3339).
    pub lock_time: String,
}

/// Whether a blocker already holds its claim or waits ahead in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlockerState {
    /// The blocker holds the claim.
    Holds,
    /// The blocker waits for it, ahead of the request.
    Queued,
}

/// One reason a request cannot be granted now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocker {
    /// The owner in the way.
    pub holder: String,
    /// Whether it holds or waits.
    pub state: BlockerState,
    /// Its claim.
    pub theirs: Claim,
    /// The requested claim it overlaps.
    pub mine: Claim,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.state {
            BlockerState::Holds => "holds",
            BlockerState::Queued => "waits for",
        };
        write!(f, "`{}` {verb} {} (overlaps {})", self.holder, self.theirs, self.mine)
    }
}

/// Why a `try_acquire` was not granted: who is in the way, on which paths.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conflict {
    /// The requesting owner.
    pub owner: String,
    /// Everything in the way, by requested claim, holders before waiters.
    pub blockers: Vec<Blocker>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` cannot lock now: ", self.owner)?;
        for (i, b) in self.blockers.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

/// The answer of [`LockManager::try_acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum TryAcquire {
    /// Every claim was granted.
    Granted(Grant),
    /// Nothing was granted.
    Conflict(Conflict),
}

/// What a [`LockManager::release`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Released {
    /// The released owner.
    pub owner: String,
    /// The claims it held (empty when it held nothing).
    pub freed: Vec<Claim>,
    /// True when it was waiting: its request was cancelled.
    pub cancelled_wait: bool,
    /// Waiters granted as a consequence, in grant order.
    pub granted: Vec<String>,
}

/// Where an owner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Neither holds nor waits.
    Idle,
    /// Waits in the queue.
    Waiting,
    /// Holds a grant.
    Holding,
}

/// A manager opened on a store, and the stale locks it reclaimed on the way.
#[derive(Debug)]
#[non_exhaustive]
pub struct Opened {
    /// The manager, holding the live locks found in the store.
    pub manager: LockManager,
    /// The dead locks dropped from the store: warn about each.
    pub reclaimed: Vec<StaleLock>,
}

type Reply = oneshot::Sender<Result<Grant, LockError>>;

#[derive(Debug)]
enum State {
    Held { lock_time: String },
    Waiting { reply: Option<Reply> },
}

#[derive(Debug)]
struct Request {
    owner: Arc<str>,
    claims: Vec<Claim>,
    run_id: Option<String>,
    pid: Option<u32>,
    state: State,
}

impl Request {
    fn grant(&self) -> Grant {
        let lock_time = match &self.state {
            State::Held { lock_time } => lock_time.clone(),
            State::Waiting { .. } => String::new(),
        };
        Grant { owner: self.owner.to_string(), claims: self.claims.clone(), lock_time }
    }
}

#[derive(Debug)]
struct Table {
    policy: LockPolicy,
    run: Option<RunInfo>,
    parallel: bool,
    held: Trie,
    queued: Trie,
    requests: FxMap<u64, Request>,
    owners: FxMap<Arc<str>, u64>,
    queue: BTreeSet<u64>,
    next_id: u64,
    store: Option<Box<dyn LockStore>>,
    /// Persist on [`LockManager::flush`] only.
    deferred: bool,
    /// The held set changed since the last write.
    dirty: bool,
}

/// The lock manager. Cloning gives another handle to the same table.
#[derive(Debug, Clone)]
pub struct LockManager {
    table: Arc<Mutex<Table>>,
}

impl LockManager {
    /// An in-memory manager: nothing is persisted.
    pub fn new(policy: LockPolicy) -> Self {
        Self::from_table(Table::new(policy, None))
    }

    /// Opens the manager of a run on `store`: reclaims the stale locks recorded there (dead pid,
    /// or another run), keeps the live ones, and rewrites the snapshot. Call it when a run starts
    /// or resumes, holding the run lock.
    pub fn open(run: &RunInfo, policy: LockPolicy, mut store: Box<dyn LockStore>) -> Result<Opened, LockError> {
        let (live, reclaimed) = partition(store.load()?, Some(run));
        let location = store.location();
        let mut table = Table::new(policy, Some(run.clone()));
        let mut by_owner: Vec<(Arc<str>, Vec<LockRecord>)> = Vec::new();
        for record in live {
            match by_owner.iter_mut().find(|(o, _)| **o == *record.agent_id) {
                Some((_, records)) => records.push(record),
                None => by_owner.push((record.agent_id.as_str().into(), vec![record])),
            }
        }
        for (owner, records) in by_owner {
            let mut claims: Vec<Claim> = Vec::new();
            for record in &records {
                for path in &record.locked_paths {
                    let resource = Resource::parse_locked_path(path).map_err(|e| LockError::Corrupt {
                        path: location.clone(),
                        detail: format!("the lock of `{owner}` on `{path}` is not a valid path: {e}"),
                    })?;
                    let mode = if matches!(resource, Resource::Serial(_)) { LockMode::Write } else { record.mode };
                    if !claims.iter().any(|c| c.resource == resource && c.mode >= mode) {
                        claims.retain(|c| c.resource != resource);
                        claims.push(Claim { resource, mode });
                    }
                }
            }
            let first = &records[0];
            table.insert_held(owner, claims, first.lock_time.clone(), first.run_id.clone(), first.pid);
        }
        table.store = Some(store);
        table.persist()?;
        Ok(Opened { manager: Self::from_table(table), reclaimed })
    }

    /// Switches to deferred persistence: changes mark the table dirty and only
    /// [`flush`](Self::flush) writes the store. For a caller that flushes regularly (the engine
    /// does, with its state files) and at the end.
    #[must_use]
    pub fn deferred(self) -> Self {
        self.lock().deferred = true;
        self
    }

    /// Writes the table to the store if it changed since the last write; returns whether it
    /// wrote. A no-op without a store. On an error the table stays dirty, so the next flush
    /// tries again.
    pub fn flush(&self) -> Result<bool, LockError> {
        let mut t = self.lock();
        if !t.dirty || t.store.is_none() {
            return Ok(false);
        }
        let written = t.write();
        if written.is_err() {
            t.dirty = true;
        }
        written.map(|()| true)
    }

    fn from_table(table: Table) -> Self {
        Self { table: Arc::new(Mutex::new(table)) }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // No code path panics while holding the table; if one ever did, the table is still
        // structurally sound (every mutation is completed before the next begins).
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Grants every claim of `claims` to `owner` now, or nothing. Refuses (as an error) a write
    /// on a common path during a parallel phase and a second request of one owner.
    pub fn try_acquire(&self, owner: &str, claims: &ClaimSet) -> Result<TryAcquire, LockError> {
        let mut t = self.lock();
        let resolved = t.admit(owner, claims)?;
        if t.conflicts_before(&resolved, u64::MAX) {
            let blockers = t.blockers(&resolved);
            return Ok(TryAcquire::Conflict(Conflict { owner: owner.to_owned(), blockers }));
        }
        t.grant_now(owner, resolved).map(TryAcquire::Granted)
    }

    /// Grants every claim of `claims` to `owner`, waiting (FIFO among conflicting requests)
    /// until that is possible. Dropping the future cancels the request.
    pub async fn acquire(&self, owner: &str, claims: &ClaimSet) -> Result<Grant, LockError> {
        let (id, rx) = {
            let mut t = self.lock();
            let resolved = t.admit(owner, claims)?;
            if !t.conflicts_before(&resolved, u64::MAX) {
                return t.grant_now(owner, resolved);
            }
            let (tx, rx) = oneshot::channel();
            (t.enqueue(owner, resolved, tx), rx)
        };
        let mut guard = WaitGuard { manager: self, id, armed: true };
        let answer = rx.await;
        guard.armed = false;
        // The sender is only dropped unsent when the request was removed on our behalf.
        answer.unwrap_or_else(|_| Err(LockError::Cancelled { owner: owner.to_owned() }))
    }

    /// Frees exactly what `owner` held (or cancels its wait) and grants the waiters that can now
    /// go. Releasing an idle owner is a no-op. On a snapshot write error the release still
    /// stands in memory.
    pub fn release(&self, owner: &str) -> Result<Released, LockError> {
        let mut t = self.lock();
        let Some(&id) = t.owners.get(owner) else {
            return Ok(Released { owner: owner.to_owned(), freed: Vec::new(), cancelled_wait: false, granted: Vec::new() });
        };
        let Some(req) = t.remove(id) else {
            return Ok(Released { owner: owner.to_owned(), freed: Vec::new(), cancelled_wait: false, granted: Vec::new() });
        };
        let (freed, cancelled_wait) = match req.state {
            State::Held { .. } => (req.claims, false),
            State::Waiting { reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(LockError::Cancelled { owner: owner.to_owned() }));
                }
                (Vec::new(), true)
            }
        };
        let granted = t.pump();
        if !freed.is_empty() || !granted.is_empty() {
            t.persist()?;
        }
        Ok(Released { owner: owner.to_owned(), freed, cancelled_wait, granted: granted.iter().map(ToString::to_string).collect() })
    }

    /// What stands in the way of `claims` right now: holders and queued requests (all of them
    /// are ahead of a new request). The common-path rule is not applied.
    pub fn check(&self, claims: &ClaimSet) -> Vec<Blocker> {
        let t = self.lock();
        if !t.would_block(claims) {
            return Vec::new();
        }
        let resolved = t.policy.resolve(claims);
        t.blockers(&resolved)
    }

    /// Would `claims` have to wait right now (a holder or a queued request in the way)? The
    /// cheap form of [`LockManager::check`]: O(path depth) per claim, whatever is held.
    pub fn would_block(&self, claims: &ClaimSet) -> bool {
        self.lock().would_block(claims)
    }

    /// Marks whether a parallel phase runs. Turning it on refuses the queued requests that write
    /// a common path (their `acquire` fails with [`LockError::CommonReadOnly`]); returns their
    /// owners. Grants already held are not revoked: switch phases at a synchronization point.
    pub fn set_parallel_phase(&self, active: bool) -> Result<Vec<String>, LockError> {
        let mut t = self.lock();
        t.parallel = active;
        if !active {
            return Ok(Vec::new());
        }
        let mut refused = Vec::new();
        let queued: Vec<u64> = t.queue.iter().copied().collect();
        for id in queued {
            let Some(err) = t.requests.get(&id).and_then(|r| t.common_violation(&r.owner, &r.claims)) else { continue };
            if let Some(req) = t.remove(id) {
                refused.push(req.owner.to_string());
                if let State::Waiting { reply: Some(reply) } = req.state {
                    let _ = reply.send(Err(err));
                }
            }
        }
        if !refused.is_empty() && !t.pump().is_empty() {
            t.persist()?;
        }
        Ok(refused)
    }

    /// Where `owner` stands.
    pub fn owner_state(&self, owner: &str) -> OwnerState {
        let t = self.lock();
        match t.owners.get(owner).and_then(|id| t.requests.get(id)) {
            None => OwnerState::Idle,
            Some(Request { state: State::Held { .. }, .. }) => OwnerState::Holding,
            Some(Request { state: State::Waiting { .. }, .. }) => OwnerState::Waiting,
        }
    }

    /// The granted requests, oldest first.
    pub fn grants(&self) -> Vec<Grant> {
        let t = self.lock();
        let mut ids: Vec<u64> = t.requests.iter().filter(|(_, r)| matches!(r.state, State::Held { .. })).map(|(&id, _)| id).collect();
        ids.sort_unstable();
        ids.iter().filter_map(|id| t.requests.get(id)).map(Request::grant).collect()
    }

    /// Number of claims held (each path or serial class of each grant).
    pub fn held_claims(&self) -> usize {
        self.lock().held.len()
    }

    /// The held locks in the shape of `RESOURCE_LOCKS.json`.
    pub fn snapshot(&self) -> ResourceLocks {
        self.lock().snapshot()
    }
}

/// Takes a waiting request out of the table if its `acquire` future is dropped, and gives back
/// a grant that was sent but never received.
struct WaitGuard<'a> {
    manager: &'a LockManager,
    id: u64,
    armed: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut t = self.manager.lock();
        let Some(req) = t.remove(self.id) else { return };
        let was_held = matches!(req.state, State::Held { .. });
        let granted = t.pump();
        if was_held || !granted.is_empty() {
            // A drop cannot report; the next change rewrites the whole snapshot anyway.
            let _ = t.persist();
        }
    }
}

impl Table {
    fn new(policy: LockPolicy, run: Option<RunInfo>) -> Self {
        Self {
            policy,
            run,
            parallel: false,
            held: Trie::default(),
            queued: Trie::default(),
            requests: FxMap::default(),
            owners: FxMap::default(),
            queue: BTreeSet::new(),
            next_id: 0,
            store: None,
            deferred: false,
            dirty: false,
        }
    }

    /// Checks that `owner` may ask and resolves its claims.
    fn admit(&self, owner: &str, claims: &ClaimSet) -> Result<Vec<Claim>, LockError> {
        if let Some(req) = self.owners.get(owner).and_then(|id| self.requests.get(id)) {
            return Err(match req.state {
                State::Held { .. } => LockError::AlreadyHolds { owner: owner.to_owned() },
                State::Waiting { .. } => LockError::AlreadyQueued { owner: owner.to_owned() },
            });
        }
        let resolved = self.policy.resolve(claims);
        match self.common_violation(owner, &resolved) {
            Some(err) => Err(err),
            None => Ok(resolved),
        }
    }

    fn common_violation(&self, owner: &str, claims: &[Claim]) -> Option<LockError> {
        if !self.parallel {
            return None;
        }
        claims.iter().find_map(|c| match (&c.resource, c.mode) {
            (Resource::Path(p), LockMode::Write) => self.policy.common_overlap(p).map(|common| LockError::CommonReadOnly {
                owner: owner.to_owned(),
                claim: p.clone(),
                common: common.clone(),
            }),
            _ => None,
        })
    }

    /// Does any claim of an unresolved set conflict with a held or queued claim? Counts only,
    /// nothing allocated.
    fn would_block(&self, claims: &ClaimSet) -> bool {
        let path = |p: &Pattern, mode| self.held.any_path(p, mode) || self.queued.any_path(p, mode);
        let class = |c: &str| self.held.any_class(c) || self.queued.any_class(c);
        claims.writes().iter().any(|p| path(p, LockMode::Write) || self.policy.classes_of(p).any(class))
            || claims.reads().iter().any(|p| path(p, LockMode::Read))
    }

    /// Does any claim conflict with a held claim or with a request queued before `before`?
    fn conflicts_before(&self, claims: &[Claim], before: u64) -> bool {
        claims.iter().any(|c| {
            let held = match &c.resource {
                Resource::Path(p) => self.held.any_path(p, c.mode),
                Resource::Serial(class) => self.held.any_class(class),
            };
            held || self
                .queued
                .visit_claim(&c.resource, c.mode, |e| if e.req < before { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
                .is_break()
        })
    }

    /// Every held or queued claim in the way of `claims`, sorted for stable messages.
    fn blockers(&self, claims: &[Claim]) -> Vec<Blocker> {
        let mut found: Vec<(usize, BlockerState, u64, u32)> = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            for (trie, state) in [(&self.held, BlockerState::Holds), (&self.queued, BlockerState::Queued)] {
                let _ = trie.visit_claim::<()>(&c.resource, c.mode, |e| {
                    found.push((i, state, e.req, e.idx));
                    ControlFlow::Continue(())
                });
            }
        }
        found.sort_unstable();
        found
            .into_iter()
            .filter_map(|(i, state, req, idx)| {
                let r = self.requests.get(&req)?;
                Some(Blocker { holder: r.owner.to_string(), state, theirs: r.claims.get(idx as usize)?.clone(), mine: claims[i].clone() })
            })
            .collect()
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn insert_held(&mut self, owner: Arc<str>, claims: Vec<Claim>, lock_time: String, run_id: Option<String>, pid: Option<u32>) -> u64 {
        let id = self.alloc_id();
        for (idx, c) in claims.iter().enumerate() {
            self.held.insert_claim(&c.resource, c.mode, id, idx_u32(idx));
        }
        self.owners.insert(owner.clone(), id);
        self.requests.insert(id, Request { owner, claims, run_id, pid, state: State::Held { lock_time } });
        id
    }

    /// Grants a request that conflicts with nothing; undone if the snapshot cannot be written.
    fn grant_now(&mut self, owner: &str, claims: Vec<Claim>) -> Result<Grant, LockError> {
        let (run_id, pid) = self.stamp();
        let id = self.insert_held(owner.into(), claims, fugue_core::time::now(), run_id, pid);
        if let Err(e) = self.persist() {
            self.remove(id);
            return Err(e);
        }
        self.requests.get(&id).map(Request::grant).ok_or(LockError::Cancelled { owner: owner.to_owned() })
    }

    fn stamp(&self) -> (Option<String>, Option<u32>) {
        match &self.run {
            Some(run) => (Some(run.run_id.clone()), Some(run.pid)),
            None => (None, Some(std::process::id())),
        }
    }

    fn enqueue(&mut self, owner: &str, claims: Vec<Claim>, reply: Reply) -> u64 {
        let id = self.alloc_id();
        for (idx, c) in claims.iter().enumerate() {
            self.queued.insert_claim(&c.resource, c.mode, id, idx_u32(idx));
        }
        let owner: Arc<str> = owner.into();
        let (run_id, pid) = self.stamp();
        self.owners.insert(owner.clone(), id);
        self.queue.insert(id);
        self.requests.insert(id, Request { owner, claims, run_id, pid, state: State::Waiting { reply: Some(reply) } });
        id
    }

    /// Takes a request out of every index.
    fn remove(&mut self, id: u64) -> Option<Request> {
        let req = self.requests.remove(&id)?;
        let trie = match req.state {
            State::Held { .. } => &mut self.held,
            State::Waiting { .. } => &mut self.queued,
        };
        for (idx, c) in req.claims.iter().enumerate() {
            trie.remove_claim(&c.resource, id, idx_u32(idx));
        }
        self.queue.remove(&id);
        if self.owners.get(&req.owner) == Some(&id) {
            self.owners.remove(&req.owner);
        }
        Some(req)
    }

    /// Grants, in FIFO order, every waiter that conflicts neither with a holder nor with an
    /// earlier waiter. Returns the owners granted.
    fn pump(&mut self) -> Vec<Arc<str>> {
        let mut granted = Vec::new();
        let waiting: Vec<u64> = self.queue.iter().copied().collect();
        for id in waiting {
            let Some(req) = self.requests.get(&id) else { continue };
            if self.conflicts_before(&req.claims, id) {
                continue;
            }
            let Some(mut req) = self.requests.remove(&id) else { continue };
            for (idx, c) in req.claims.iter().enumerate() {
                self.queued.remove_claim(&c.resource, id, idx_u32(idx));
                self.held.insert_claim(&c.resource, c.mode, id, idx_u32(idx));
            }
            self.queue.remove(&id);
            let reply = match std::mem::replace(&mut req.state, State::Held { lock_time: fugue_core::time::now() }) {
                State::Waiting { reply } => reply,
                State::Held { .. } => None,
            };
            let grant = req.grant();
            let owner = req.owner.clone();
            self.requests.insert(id, req);
            let delivered = match reply {
                Some(reply) => reply.send(Ok(grant)).is_ok(),
                None => false,
            };
            if delivered {
                granted.push(owner);
            } else {
                // Its `acquire` is gone: give the grant straight back.
                self.remove(id);
            }
        }
        granted
    }

    fn snapshot(&self) -> ResourceLocks {
        let mut ids: Vec<u64> = self.requests.iter().filter(|(_, r)| matches!(r.state, State::Held { .. })).map(|(&id, _)| id).collect();
        ids.sort_unstable();
        let mut locks = Vec::new();
        for req in ids.iter().filter_map(|id| self.requests.get(id)) {
            let State::Held { lock_time } = &req.state else { continue };
            for mode in [LockMode::Write, LockMode::Read] {
                let mut paths: Vec<String> = req
                    .claims
                    .iter()
                    .filter(|c| c.mode == mode && matches!(c.resource, Resource::Path(_)))
                    .map(|c| c.resource.to_string())
                    .collect();
                if mode == LockMode::Write {
                    paths.extend(req.claims.iter().filter_map(|c| match &c.resource {
                        Resource::Serial(class) => Some(format!("{SERIAL_PREFIX}{class}")),
                        Resource::Path(_) => None,
                    }));
                }
                if paths.is_empty() {
                    continue;
                }
                locks.push(LockRecord {
                    agent_id: req.owner.to_string(),
                    locked_paths: paths,
                    lock_time: lock_time.clone(),
                    mode,
                    run_id: req.run_id.clone(),
                    pid: req.pid,
                });
            }
        }
        ResourceLocks { locks }
    }

    fn persist(&mut self) -> Result<(), LockError> {
        if self.store.is_none() {
            return Ok(());
        }
        if self.deferred {
            self.dirty = true;
            return Ok(());
        }
        self.write()
    }

    fn write(&mut self) -> Result<(), LockError> {
        self.dirty = false;
        let snapshot = self.snapshot();
        match &mut self.store {
            Some(store) => store.save(&snapshot),
            None => Ok(()),
        }
    }
}

fn idx_u32(idx: usize) -> u32 {
    u32::try_from(idx).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use fugue_core::{Pattern, Scope};

    use super::*;
    use crate::store::FileStore;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect("valid pattern")
    }

    fn w(s: &str) -> ClaimSet {
        ClaimSet::new().write(p(s))
    }

    fn r(s: &str) -> ClaimSet {
        ClaimSet::new().read(p(s))
    }

    fn policy() -> LockPolicy {
        LockPolicy {
            common: Scope(vec![p("common/**")]),
            serial: BTreeMap::from([("manifests".to_owned(), Scope(vec![p("Cargo.toml"), p("package.json")]))]),
        }
    }

    fn granted(answer: Result<TryAcquire, LockError>) -> Grant {
        match answer {
            Ok(TryAcquire::Granted(g)) => g,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn conflict(answer: Result<TryAcquire, LockError>) -> Conflict {
        match answer {
            Ok(TryAcquire::Conflict(c)) => c,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    type Wait = Pin<Box<dyn Future<Output = Result<Grant, LockError>>>>;

    /// An `acquire` that owns its arguments, to be polled by hand.
    fn wait(m: &LockManager, owner: &'static str, claims: ClaimSet) -> Wait {
        let m = m.clone();
        Box::pin(async move { m.acquire(owner, &claims).await })
    }

    fn poll_once(fut: Pin<&mut (dyn Future<Output = Result<Grant, LockError>> + 'static)>) -> Poll<Result<Grant, LockError>> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn writes_exclude_overlaps_and_reads_share() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("a", &w("src/a/**")));
        let c = conflict(m.try_acquire("b", &w("src/a/x.rs")));
        assert_eq!(c.to_string(), "`b` cannot lock now: `a` holds write src/a/** (overlaps write src/a/x.rs)");
        conflict(m.try_acquire("b", &r("src")));
        granted(m.try_acquire("b", &w("src/ab/x.rs")));
        granted(m.try_acquire("r1", &r("docs/**")));
        granted(m.try_acquire("r2", &r("docs/x.md")));
        let c = conflict(m.try_acquire("w", &w("docs/x.md")));
        let holders: Vec<&str> = c.blockers.iter().map(|b| b.holder.as_str()).collect();
        assert_eq!(holders, ["r1", "r2"]);
    }

    #[test]
    fn grants_are_all_or_nothing_and_release_frees_exactly_them() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("a", &w("x")));
        let before = m.snapshot();
        conflict(m.try_acquire("b", &w("y").write(p("x/z")).read(p("q"))));
        assert_eq!(m.snapshot(), before, "nothing of b was granted");
        assert_eq!(m.owner_state("b"), OwnerState::Idle);
        granted(m.try_acquire("b", &w("y").read(p("q"))));
        let released = m.release("b").expect("release");
        assert_eq!(released.freed.iter().map(ToString::to_string).collect::<Vec<_>>(), ["read q", "write y"]);
        assert_eq!(m.held_claims(), 1, "a's claim is untouched");
        assert!(m.release("nobody").expect("idle release").freed.is_empty());
    }

    #[test]
    fn serial_classes_are_held_exclusively() {
        let m = LockManager::new(policy());
        let g = granted(m.try_acquire("a", &w("Cargo.toml")));
        assert!(g.claims.iter().any(|c| c.resource == Resource::Serial("manifests".to_owned())));
        let c = conflict(m.try_acquire("b", &w("package.json")));
        assert_eq!(c.blockers.len(), 1);
        assert_eq!(c.blockers[0].theirs.resource.to_string(), "serial:manifests");
        granted(m.try_acquire("c", &r("package.json")));
    }

    #[test]
    fn common_writes_are_refused_during_parallel_phases() {
        let m = LockManager::new(policy());
        m.set_parallel_phase(true).expect("phase");
        let err = m.try_acquire("a", &w("common/types/x.rs")).expect_err("refused");
        assert!(matches!(&err, LockError::CommonReadOnly { common, .. } if common.as_str() == "common/**"), "{err}");
        assert_eq!(m.owner_state("a"), OwnerState::Idle);
        granted(m.try_acquire("a", &r("common/types/**")));
        m.set_parallel_phase(false).expect("phase");
        m.release("a").expect("release");
        granted(m.try_acquire("a", &w("common/types/x.rs")));
    }

    #[test]
    fn one_request_per_owner() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("a", &w("x")));
        assert!(matches!(m.try_acquire("a", &w("y")), Err(LockError::AlreadyHolds { .. })));
        granted(m.try_acquire("h", &w("z")));
        let mut wait = wait(&m, "b", w("z"));
        assert!(poll_once(wait.as_mut()).is_pending());
        assert!(matches!(m.try_acquire("b", &w("q")), Err(LockError::AlreadyQueued { .. })));
    }

    #[test]
    fn waiters_are_served_fifo_and_cannot_be_overtaken_by_conflicting_requests() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("h", &w("a")));
        let mut first = wait(&m, "w1", w("a/b"));
        assert!(poll_once(first.as_mut()).is_pending());
        // A reader of a/b/c conflicts with the holder and with the queued writer w1: it must
        // queue behind w1, not slip in when the holder leaves.
        let c = conflict(m.try_acquire("r", &r("a/b/c")));
        let states: Vec<(String, BlockerState)> = c.blockers.iter().map(|b| (b.holder.clone(), b.state)).collect();
        assert_eq!(states, [("h".to_owned(), BlockerState::Holds), ("w1".to_owned(), BlockerState::Queued)]);
        let mut second = wait(&m, "w2", r("a/b/c"));
        assert!(poll_once(second.as_mut()).is_pending());
        // Unrelated work is not held up by the queue.
        granted(m.try_acquire("x", &w("b")));
        let released = m.release("h").expect("release");
        assert_eq!(released.granted, ["w1"], "w2 stays behind w1");
        assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Ok(g)) if g.owner == "w1"));
        assert!(poll_once(second.as_mut()).is_pending());
        assert_eq!(m.release("w1").expect("release").granted, ["w2"]);
        assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn dropping_a_wait_leaves_nothing_behind() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("h", &w("a")));
        {
            let mut wait = wait(&m, "w1", w("a"));
            assert!(poll_once(wait.as_mut()).is_pending());
            assert_eq!(m.owner_state("w1"), OwnerState::Waiting);
        }
        assert_eq!(m.owner_state("w1"), OwnerState::Idle);
        // A grant sent to a wait that is then dropped unseen is given back.
        let mut wait = wait(&m, "w2", w("a"));
        assert!(poll_once(wait.as_mut()).is_pending());
        assert_eq!(m.release("h").expect("release").granted, ["w2"]);
        assert_eq!(m.owner_state("w2"), OwnerState::Holding);
        drop(wait);
        assert_eq!(m.owner_state("w2"), OwnerState::Idle);
        assert_eq!(m.held_claims(), 0);
    }

    #[test]
    fn release_of_a_waiter_cancels_it_and_phase_change_refuses_common_writers() {
        let m = LockManager::new(policy());
        granted(m.try_acquire("h", &w("common/**")));
        let mut cancelled = wait(&m, "w1", w("common/x"));
        assert!(poll_once(cancelled.as_mut()).is_pending());
        let released = m.release("w1").expect("release");
        assert!(released.cancelled_wait && released.freed.is_empty());
        assert!(matches!(poll_once(cancelled.as_mut()), Poll::Ready(Err(LockError::Cancelled { .. }))));

        let mut refused = wait(&m, "w2", w("common/y"));
        assert!(poll_once(refused.as_mut()).is_pending());
        let mut reader = wait(&m, "r", r("common/z"));
        assert!(poll_once(reader.as_mut()).is_pending());
        assert_eq!(m.set_parallel_phase(true).expect("phase"), ["w2"]);
        assert!(matches!(poll_once(refused.as_mut()), Poll::Ready(Err(LockError::CommonReadOnly { .. }))));
        assert!(poll_once(reader.as_mut()).is_pending(), "the reader still waits for the holder");
        assert_eq!(m.release("h").expect("release").granted, ["r"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_task_is_woken_by_a_release_on_another_thread() {
        let m = LockManager::new(LockPolicy::default());
        granted(m.try_acquire("h", &w("a")));
        let waiter = {
            let m = m.clone();
            tokio::spawn(async move { m.acquire("w", &w("a/b")).await })
        };
        while m.owner_state("w") != OwnerState::Waiting {
            tokio::task::yield_now().await;
        }
        let releaser = {
            let m = m.clone();
            std::thread::spawn(move || m.release("h"))
        };
        assert_eq!(releaser.join().expect("thread").expect("release").granted, ["w"]);
        let grant = waiter.await.expect("task").expect("grant");
        assert_eq!(grant.owner, "w");
    }

    #[test]
    fn every_change_is_persisted_and_open_reclaims_dead_locks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunInfo::current("run-1");
        let opened = LockManager::open(&run, policy(), Box::new(FileStore::new(dir.path()))).expect("open");
        assert!(opened.reclaimed.is_empty());
        let m = opened.manager;
        granted(m.try_acquire("a", &w("Cargo.toml").read(p("src/**"))));
        let mut store = FileStore::new(dir.path());
        let doc = store.load().expect("load");
        assert_eq!(doc, m.snapshot());
        assert_eq!(doc.locks.len(), 2);
        assert_eq!(doc.locks[0].locked_paths, ["Cargo.toml", "serial:manifests"]);
        assert_eq!((doc.locks[0].run_id.as_deref(), doc.locks[0].pid), (Some("run-1"), Some(std::process::id())));
        assert_eq!(doc.locks[1].mode, LockMode::Read);

        // Another manager of the same live run keeps the locks; a new run reclaims them.
        let same = LockManager::open(&run, policy(), Box::new(FileStore::new(dir.path()))).expect("reopen");
        assert!(same.reclaimed.is_empty());
        conflict(same.manager.try_acquire("b", &w("package.json")));
        conflict(same.manager.try_acquire("c", &w("src/x.rs")));
        let next = LockManager::open(&RunInfo::current("run-2"), policy(), Box::new(FileStore::new(dir.path()))).expect("open run 2");
        assert_eq!(next.reclaimed.len(), 2);
        assert!(next.reclaimed[0].to_string().contains("its run `run-1` is not the active run `run-2`"), "{}", next.reclaimed[0]);
        granted(next.manager.try_acquire("b", &w("package.json")));

        m.release("a").expect("release");
        assert!(store.load().expect("load").locks.is_empty(), "the last writer's snapshot wins");
    }

    #[test]
    fn deferred_persistence_writes_on_flush_only_and_retries_a_failed_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunInfo::current("run-1");
        let m = LockManager::open(&run, policy(), Box::new(FileStore::new(dir.path()))).expect("open").manager.deferred();
        let store = FileStore::new(dir.path());
        let on_disk = || store.clone().load().expect("load").locks.len();
        assert!(!m.flush().expect("flush"), "nothing changed since open");
        granted(m.try_acquire("a", &w("src/a.rs")));
        granted(m.try_acquire("b", &w("src/b.rs")));
        assert_eq!(on_disk(), 0, "grants are not written one by one");
        assert!(m.flush().expect("flush"));
        assert_eq!(store.clone().load().expect("load"), m.snapshot());
        assert!(!m.flush().expect("flush"), "clean after a write");
        m.release("a").expect("release");
        assert_eq!(on_disk(), 2);
        assert!(m.flush().expect("flush"));
        assert_eq!(on_disk(), 1);

        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flaky = LockManager::new(policy());
        flaky.lock().store = Some(Box::new(FlakyStore(fail.clone())));
        let flaky = flaky.deferred();
        granted(flaky.try_acquire("a", &w("src/a.rs")));
        assert!(flaky.flush().is_err(), "the write error surfaces at the flush");
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(flaky.flush().expect("flush"), "still dirty: the next flush writes");
    }

    /// A store whose writes fail on demand.
    #[derive(Debug)]
    struct FlakyStore(Arc<std::sync::atomic::AtomicBool>);

    impl LockStore for FlakyStore {
        fn load(&mut self) -> Result<ResourceLocks, LockError> {
            Ok(ResourceLocks::default())
        }
        fn save(&mut self, _: &ResourceLocks) -> Result<(), LockError> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(LockError::Write { path: self.location(), source: std::io::Error::other("disk full") });
            }
            Ok(())
        }
        fn location(&self) -> std::path::PathBuf {
            "flaky.json".into()
        }
    }

    #[test]
    fn a_grant_that_cannot_be_persisted_is_undone_and_a_release_stands() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let m = LockManager::open(&RunInfo::current("r"), LockPolicy::default(), Box::new(FlakyStore(fail.clone()))).expect("open").manager;
        granted(m.try_acquire("a", &w("x")));
        fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = m.try_acquire("b", &w("y")).expect_err("write fails");
        assert_eq!(err.to_string(), "failed to write flaky.json: disk full; check that the state directory is writable");
        assert_eq!(m.owner_state("b"), OwnerState::Idle);
        assert_eq!(m.held_claims(), 1);
        assert!(matches!(m.release("a"), Err(LockError::Write { .. })));
        assert_eq!(m.held_claims(), 0, "the release stands in memory");
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        granted(m.try_acquire("b", &w("x")));
    }
}

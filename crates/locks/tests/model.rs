//! Model-based property test of the lock manager.
//!
//! Random interleavings of `try_acquire`, `acquire`, `release`, dropped waits and phase changes
//! from several owners run against the real manager and against a brute-force model that
//! implements the specification pairwise (every claim against every other claim, no trie). After
//! every step the two must agree exactly — answers, blockers, grants, waiters woken — and the
//! granted set must never hold two conflicting claims. At the end every holder is released
//! until the queue drains: each waiter must have been granted (FIFO makes starvation impossible).
//!
//! `acquire` futures are polled by hand with a no-op waker, so the interleaving is exactly the
//! generated one.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use fugue_core::{Pattern, Scope};
use fugue_locks::{BlockerState, Claim, ClaimSet, Grant, LockError, LockManager, LockMode, LockPolicy, OwnerState, Resource, TryAcquire};
use proptest::prelude::*;

const PATTERNS: &[&str] =
    &["a", "a/b", "a/b/c", "a/c", "b", "b/a", "c/x", "c/**", "a/*", "**/b", "a/b/**", "Cargo.toml", "mig/1", "mig/**", "d/e/f"];
const OWNERS: &[&str] = &["o0", "o1", "o2", "o3", "o4", "o5"];

fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect("valid pattern")
}

fn policy() -> LockPolicy {
    LockPolicy {
        common: Scope(vec![p("c/**")]),
        serial: BTreeMap::from([
            ("manifests".to_owned(), Scope(vec![p("Cargo.toml"), p("b/a")])),
            ("mig".to_owned(), Scope(vec![p("mig/**")])),
        ]),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Try(usize, Vec<usize>, Vec<usize>),
    Acquire(usize, Vec<usize>, Vec<usize>),
    Release(usize),
    Cancel(usize),
    Parallel(bool),
}

fn claim_set(writes: &[usize], reads: &[usize]) -> ClaimSet {
    let mut cs = ClaimSet::new();
    for &w in writes {
        cs = cs.write(p(PATTERNS[w]));
    }
    for &r in reads {
        cs = cs.read(p(PATTERNS[r]));
    }
    cs
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let idx = || prop::collection::vec(0..PATTERNS.len(), 0..3);
    let owner = 0..OWNERS.len();
    prop_oneof![
        3 => (owner.clone(), idx(), idx()).prop_map(|(o, w, r)| Op::Try(o, w, r)),
        4 => (owner.clone(), idx(), idx()).prop_map(|(o, w, r)| Op::Acquire(o, w, r)),
        4 => owner.prop_map(Op::Release),
        1 => (0..8usize).prop_map(Op::Cancel),
        1 => any::<bool>().prop_map(Op::Parallel),
    ]
}

// ---- the brute-force model ----

fn overlap(a: &Resource, b: &Resource) -> bool {
    match (a, b) {
        (Resource::Path(x), Resource::Path(y)) => x.overlaps(y),
        (Resource::Serial(x), Resource::Serial(y)) => x == y,
        _ => false,
    }
}

fn conflict(a: &Claim, b: &Claim) -> bool {
    overlap(&a.resource, &b.resource) && (a.mode == LockMode::Write || b.mode == LockMode::Write)
}

fn resolve(pol: &LockPolicy, cs: &ClaimSet) -> Vec<Claim> {
    let mut out: BTreeMap<Resource, LockMode> = BTreeMap::new();
    for w in cs.writes() {
        out.insert(Resource::Path(w.clone()), LockMode::Write);
        for (class, scope) in &pol.serial {
            if scope.patterns().iter().any(|s| s.overlaps(w)) {
                out.insert(Resource::Serial(class.clone()), LockMode::Write);
            }
        }
    }
    for r in cs.reads() {
        out.entry(Resource::Path(r.clone())).or_insert(LockMode::Read);
    }
    out.into_iter().map(|(resource, mode)| Claim { resource, mode }).collect()
}

#[derive(Debug, Clone)]
struct Req {
    owner: String,
    claims: Vec<Claim>,
}

#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Holds,
    Queued,
    Common(String),
    Ok(Vec<Claim>),
}

#[derive(Debug, Default)]
struct Model {
    parallel: bool,
    held: Vec<Req>,
    queue: Vec<Req>,
}

impl Model {
    fn admit(&self, pol: &LockPolicy, owner: &str, cs: &ClaimSet) -> Admit {
        if self.held.iter().any(|r| r.owner == owner) {
            return Admit::Holds;
        }
        if self.queue.iter().any(|r| r.owner == owner) {
            return Admit::Queued;
        }
        let claims = resolve(pol, cs);
        if let Some(bad) = self.common_violation(pol, &claims) {
            return Admit::Common(bad);
        }
        Admit::Ok(claims)
    }

    fn common_violation(&self, pol: &LockPolicy, claims: &[Claim]) -> Option<String> {
        if !self.parallel {
            return None;
        }
        claims.iter().find_map(|c| match &c.resource {
            Resource::Path(p) if c.mode == LockMode::Write && pol.common.patterns().iter().any(|x| x.overlaps(p)) => Some(p.to_string()),
            _ => None,
        })
    }

    /// (mine, state, holder, theirs) for every conflicting pair, sorted.
    fn blockers(&self, claims: &[Claim], queued_limit: usize) -> Vec<(String, BlockerState, String, String)> {
        let mut out = Vec::new();
        for mine in claims {
            for (reqs, state) in [(&self.held[..], BlockerState::Holds), (&self.queue[..queued_limit], BlockerState::Queued)] {
                for r in reqs {
                    for theirs in &r.claims {
                        if conflict(mine, theirs) {
                            out.push((mine.to_string(), state, r.owner.clone(), theirs.to_string()));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn pump(&mut self) -> Vec<String> {
        let mut granted = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            let w = &self.queue[i];
            let blocked = w.claims.iter().any(|c| {
                self.held.iter().any(|h| h.claims.iter().any(|t| conflict(c, t)))
                    || self.queue[..i].iter().any(|e| e.claims.iter().any(|t| conflict(c, t)))
            });
            if blocked {
                i += 1;
            } else {
                let w = self.queue.remove(i);
                granted.push(w.owner.clone());
                self.held.push(w);
            }
        }
        granted
    }
}

// ---- the harness ----

type Wait = Pin<Box<dyn Future<Output = Result<Grant, LockError>>>>;

struct Harness {
    pol: LockPolicy,
    mgr: LockManager,
    model: Model,
    /// Pending `acquire` futures, oldest first.
    waits: Vec<(String, Wait)>,
}

fn poll(w: &mut Wait) -> Poll<Result<Grant, LockError>> {
    let mut cx = Context::from_waker(Waker::noop());
    w.as_mut().poll(&mut cx)
}

fn sorted_claims(claims: &[Claim]) -> Vec<String> {
    let mut v: Vec<String> = claims.iter().map(ToString::to_string).collect();
    v.sort();
    v
}

impl Harness {
    fn new() -> Self {
        let pol = policy();
        Self { mgr: LockManager::new(pol.clone()), pol, model: Model::default(), waits: Vec::new() }
    }

    fn check_admit_error(&self, expected: &Admit, got: &LockError) -> Result<(), TestCaseError> {
        match (expected, got) {
            (Admit::Holds, LockError::AlreadyHolds { .. }) | (Admit::Queued, LockError::AlreadyQueued { .. }) => Ok(()),
            (Admit::Common(p), LockError::CommonReadOnly { claim, .. }) if claim.as_str() == p => Ok(()),
            _ => Err(TestCaseError::fail(format!("expected {expected:?}, got error {got}"))),
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Try(o, w, r) => {
                let owner = OWNERS[*o];
                let cs = claim_set(w, r);
                let expected = self.model.admit(&self.pol, owner, &cs);
                let got = self.mgr.try_acquire(owner, &cs);
                match (&expected, got) {
                    (Admit::Ok(claims), Ok(answer)) => {
                        let want = self.model.blockers(claims, self.model.queue.len());
                        match answer {
                            TryAcquire::Granted(g) => {
                                prop_assert!(want.is_empty(), "granted {owner} despite {want:?}");
                                prop_assert_eq!(sorted_claims(&g.claims), sorted_claims(claims));
                                self.model.held.push(Req { owner: owner.to_owned(), claims: claims.clone() });
                            }
                            TryAcquire::Conflict(c) => {
                                let mut have: Vec<_> = c
                                    .blockers
                                    .iter()
                                    .map(|b| (b.mine.to_string(), b.state, b.holder.clone(), b.theirs.to_string()))
                                    .collect();
                                have.sort();
                                prop_assert!(!want.is_empty(), "refused {owner} without a conflict: {c}");
                                prop_assert_eq!(have, want);
                            }
                        }
                    }
                    (_, Err(e)) => self.check_admit_error(&expected, &e)?,
                    (_, Ok(answer)) => prop_assert!(false, "expected {expected:?}, got {answer:?}"),
                }
            }
            Op::Acquire(o, w, r) => {
                let owner = OWNERS[*o];
                let cs = claim_set(w, r);
                let expected = self.model.admit(&self.pol, owner, &cs);
                let mgr = self.mgr.clone();
                let who = owner.to_owned();
                let mut fut: Wait = Box::pin(async move { mgr.acquire(&who, &cs).await });
                match (&expected, poll(&mut fut)) {
                    (Admit::Ok(claims), Poll::Ready(Ok(g))) => {
                        prop_assert!(self.model.blockers(claims, self.model.queue.len()).is_empty(), "{owner} jumped the queue");
                        prop_assert_eq!(sorted_claims(&g.claims), sorted_claims(claims));
                        self.model.held.push(Req { owner: owner.to_owned(), claims: claims.clone() });
                    }
                    (Admit::Ok(claims), Poll::Pending) => {
                        prop_assert!(!self.model.blockers(claims, self.model.queue.len()).is_empty(), "{owner} waits for nothing");
                        self.model.queue.push(Req { owner: owner.to_owned(), claims: claims.clone() });
                        self.waits.push((owner.to_owned(), fut));
                    }
                    (_, Poll::Ready(Err(e))) => self.check_admit_error(&expected, &e)?,
                    (_, other) => prop_assert!(false, "expected {expected:?}, got {other:?}"),
                }
            }
            Op::Release(o) => {
                let owner = OWNERS[*o];
                let held = self.model.held.iter().position(|r| r.owner == owner);
                let queued = self.model.queue.iter().position(|r| r.owner == owner);
                let released = self.mgr.release(owner).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut freed = Vec::new();
                if let Some(i) = held {
                    freed = self.model.held.remove(i).claims;
                }
                if let Some(i) = queued {
                    self.model.queue.remove(i);
                    let k = self.waits.iter().position(|(w, _)| w == owner).ok_or_else(|| TestCaseError::fail("lost wait"))?;
                    let (_, mut fut) = self.waits.remove(k);
                    prop_assert!(matches!(poll(&mut fut), Poll::Ready(Err(LockError::Cancelled { .. }))), "wait of {owner} not cancelled");
                }
                prop_assert_eq!(released.cancelled_wait, queued.is_some());
                prop_assert_eq!(sorted_claims(&released.freed), sorted_claims(&freed));
                let granted = self.model.pump();
                prop_assert_eq!(&released.granted, &granted);
            }
            Op::Cancel(k) => {
                if self.waits.is_empty() {
                    return Ok(());
                }
                let (owner, fut) = self.waits.remove(k % self.waits.len());
                drop(fut);
                let i = self.model.queue.iter().position(|r| r.owner == owner).ok_or_else(|| TestCaseError::fail("lost queue entry"))?;
                self.model.queue.remove(i);
                self.model.pump();
            }
            Op::Parallel(on) => {
                self.model.parallel = *on;
                let refused = self.mgr.set_parallel_phase(*on).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut want = Vec::new();
                if *on {
                    let queue = std::mem::take(&mut self.model.queue);
                    let (bad, keep): (Vec<Req>, Vec<Req>) =
                        queue.into_iter().partition(|r| self.model.common_violation(&self.pol, &r.claims).is_some());
                    self.model.queue = keep;
                    want = bad.into_iter().map(|r| r.owner).collect();
                    for owner in &want {
                        let k = self.waits.iter().position(|(w, _)| w == owner).ok_or_else(|| TestCaseError::fail("lost wait"))?;
                        let (_, mut fut) = self.waits.remove(k);
                        prop_assert!(
                            matches!(poll(&mut fut), Poll::Ready(Err(LockError::CommonReadOnly { .. }))),
                            "wait of {owner} not refused"
                        );
                    }
                    self.model.pump();
                }
                prop_assert_eq!(refused, want);
            }
        }
        self.settle()?;
        self.invariants()
    }

    /// Polls every pending wait: exactly the owners the model granted must be ready.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        let mut still = Vec::new();
        for (owner, mut fut) in self.waits.drain(..) {
            let granted = self.model.held.iter().find(|r| r.owner == owner);
            match (granted, poll(&mut fut)) {
                (Some(r), Poll::Ready(Ok(g))) => prop_assert_eq!(sorted_claims(&g.claims), sorted_claims(&r.claims)),
                (None, Poll::Pending) => still.push((owner, fut)),
                (g, other) => prop_assert!(false, "wait of {owner}: model granted {:?}, future {other:?}", g.is_some()),
            }
        }
        self.waits = still;
        Ok(())
    }

    fn invariants(&self) -> Result<(), TestCaseError> {
        let grants = self.mgr.grants();
        // The oracle: no two granted claims of different owners conflict.
        for (i, a) in grants.iter().enumerate() {
            for b in &grants[i + 1..] {
                for ca in &a.claims {
                    for cb in &b.claims {
                        prop_assert!(!conflict(ca, cb), "{} holds {ca} while {} holds {cb}", a.owner, b.owner);
                    }
                }
            }
        }
        let mut have: Vec<(String, Vec<String>)> = grants.iter().map(|g| (g.owner.clone(), sorted_claims(&g.claims))).collect();
        let mut want: Vec<(String, Vec<String>)> = self.model.held.iter().map(|r| (r.owner.clone(), sorted_claims(&r.claims))).collect();
        have.sort();
        want.sort();
        prop_assert_eq!(have, want);
        for owner in OWNERS {
            let want = if self.model.held.iter().any(|r| r.owner == *owner) {
                OwnerState::Holding
            } else if self.model.queue.iter().any(|r| r.owner == *owner) {
                OwnerState::Waiting
            } else {
                OwnerState::Idle
            };
            prop_assert_eq!(self.mgr.owner_state(owner), want, "state of {}", owner);
        }
        Ok(())
    }

    /// Releases every holder, round after round, until nobody waits; each round must grant.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut rounds = 0;
        while !self.waits.is_empty() {
            rounds += 1;
            prop_assert!(rounds <= OWNERS.len() + 1, "waiters starve: {:?}", self.model.queue);
            let before = self.waits.len();
            let holders: Vec<String> = self.model.held.iter().map(|r| r.owner.clone()).collect();
            for owner in holders {
                let released = self.mgr.release(&owner).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let i = self.model.held.iter().position(|r| r.owner == owner).ok_or_else(|| TestCaseError::fail("lost holder"))?;
                self.model.held.remove(i);
                prop_assert_eq!(&released.granted, &self.model.pump());
                self.settle()?;
                self.invariants()?;
            }
            prop_assert!(self.waits.len() < before, "a full release round granted nobody");
        }
        prop_assert!(self.model.queue.is_empty());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn manager_matches_the_pairwise_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op)?;
        }
        h.drain()?;
    }
}

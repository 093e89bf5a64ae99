//! Conflict edges between tasks of one phase, found through a path trie instead of by
//! comparing every pair.
//!
//! Two patterns overlap when the literal components of one are a prefix of the other's
//! (`fugue_core::Pattern::overlaps`). So every pattern is filed in a trie under its literal
//! components, and the patterns that overlap one filed at node `N` are exactly those filed at
//! `N`, at its ancestors, or below it. Each entry walks up from its node once; pairs with
//! entries below it are found from the other side. The work is the sum of the trie depths of
//! the entries plus the pairs reported, not the square of the task count.
//!
//! The edges are oriented along the total order ([`crate::order`]) and thinned without losing
//! any ordering. Under `overlap: serialize`:
//! * the writers filed on one root-to-node path all overlap each other, so they form a chain
//!   in the total order; every entry gets an edge only to the writer just before it and the
//!   one just after it among the writers of its path (its own node and the ancestors), which
//!   links each path's writers into that chain and orders a reader against all of them;
//! * readers are not ordered among themselves, so a writer needs an edge to a reader of an
//!   ancestor node — but only when no writer of that ancestor's path lies between the two in
//!   the order (otherwise the chain already orders them);
//! * tasks modifying paths of one serial class are chained in order;
//! * a pair already joined by a direct declared edge gets no conflict edge, and neither does
//!   one that a two-step path of other edges inside the phase already orders
//!   ([`drop_implied`]).
//!
//! Under `overlap: isolate` overlapping writers get no edge; readers then need an edge to each
//! writer of their nodes, since no chain orders the writers. Which groups end up holding
//! overlapping writers is asked of the trie again once the groups are known
//! ([`PhaseTrie::conflicting_levels`]).
//!
//! A write/read edge that runs from the reader to the writer is reported as a `reader-first`
//! warning unless the user already declared that order through a `depends_on` path.

use std::collections::{BTreeSet, HashMap};

use fugue_core::{OverlapPolicy, Plan, PlanIssue, Scope};

use crate::index::{Csr, TaskIndex};
use crate::order::Order;

const NO_PARENT: u32 = u32::MAX;
/// How many tasks the declared-path search behind a `reader-first` warning may visit.
const PATH_SEARCH_BUDGET: usize = 256;
/// `reader-first` warnings given one by one before the rest are summed up.
pub(crate) const READER_FIRST_SHOWN: usize = 50;

/// Reason codes of a conflict pair, in the order `EdgeReason` sorts them.
pub(crate) const WRITE_WRITE: u32 = 0;
pub(crate) const WRITE_READ: u32 = 1;
/// `SERIAL + k` is the `k`-th serial class of `plan.boundaries.serial`.
pub(crate) const SERIAL: u32 = 2;

/// An ordering between two tasks of one phase, by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pair {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) reason: u32,
    /// For a write/read pair: the reader comes first.
    pub(crate) reader_first: bool,
}

/// Literal-prefix trie of one phase's scopes.
#[derive(Debug)]
pub(crate) struct PhaseTrie {
    parent: Vec<u32>,
    /// Writers of node `k` are `writers[w_start[k]..w_start[k + 1]]`, as ranks, ascending.
    w_start: Vec<u32>,
    writers: Vec<u32>,
    r_start: Vec<u32>,
    readers: Vec<u32>,
    /// Every filed entry: (node, rank, writes).
    entries: Vec<(u32, u32, bool)>,
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl PhaseTrie {
    /// Files the scopes of `tasks` (given in order).
    pub(crate) fn build(plan: &Plan, tasks: &[usize], order: &Order) -> Self {
        // Nodes by their literal prefix: one lookup per pattern, plus one per node created.
        let mut by_prefix: HashMap<&str, u32> = HashMap::with_capacity(
            tasks.iter().map(|&t| plan.tasks[t].modifies.patterns().len() + plan.tasks[t].reads.patterns().len()).sum(),
        );
        let mut parent = vec![NO_PARENT];
        let mut entries: Vec<(u32, u32, bool)> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        for &t in tasks {
            let task = &plan.tasks[t];
            let rank = order.rank[t];
            let scopes = [(&task.modifies, true), (&task.reads, false)];
            for (scope, writes) in scopes {
                for pattern in scope.patterns() {
                    let prefix = pattern.literal_prefix();
                    let node = match by_prefix.get(prefix) {
                        Some(&node) => node,
                        None => {
                            // Walk up to the nearest known ancestor, then create the path down.
                            missing.clear();
                            let mut cur = prefix;
                            let mut top = 0u32;
                            while !cur.is_empty() {
                                if let Some(&k) = by_prefix.get(cur) {
                                    top = k;
                                    break;
                                }
                                missing.push(cur);
                                cur = cur.rfind('/').map_or("", |i| &cur[..i]);
                            }
                            for &p in missing.iter().rev() {
                                let k = to_u32(parent.len());
                                parent.push(top);
                                by_prefix.insert(p, k);
                                top = k;
                            }
                            top
                        }
                    };
                    entries.push((node, rank, writes));
                }
            }
        }
        // One entry per task, node and access. A task both writing and reading at a node keeps
        // both: under `overlap: isolate` its read still orders it against the other writers.
        entries.sort_unstable_by_key(|&(node, rank, writes)| (node, rank, !writes));
        entries.dedup();
        let nodes = parent.len();
        let mut w_start = vec![0u32; nodes + 1];
        let mut r_start = vec![0u32; nodes + 1];
        for &(node, _, writes) in &entries {
            let row = if writes { &mut w_start } else { &mut r_start };
            row[node as usize + 1] += 1;
        }
        for k in 0..nodes {
            w_start[k + 1] += w_start[k];
            r_start[k + 1] += r_start[k];
        }
        // Entries are sorted by (node, rank), so filling in entry order keeps ranks ascending.
        let mut writers = Vec::with_capacity(w_start[nodes] as usize);
        let mut readers = Vec::with_capacity(r_start[nodes] as usize);
        for &(_, rank, writes) in &entries {
            if writes { writers.push(rank) } else { readers.push(rank) }
        }
        Self { parent, w_start, writers, r_start, readers, entries }
    }

    fn writers(&self, node: u32) -> &[u32] {
        let k = node as usize;
        &self.writers[self.w_start[k] as usize..self.w_start[k + 1] as usize]
    }

    fn readers(&self, node: u32) -> &[u32] {
        let k = node as usize;
        &self.readers[self.r_start[k] as usize..self.r_start[k + 1] as usize]
    }

    /// The node and its ancestors up to the root.
    fn up(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(Some(node), |&k| Some(self.parent[k as usize]).filter(|&p| p != NO_PARENT))
    }

    /// The ordering pairs from scope overlaps.
    pub(crate) fn pairs(&self, policy: OverlapPolicy, out: &mut Vec<Pair>) {
        let mut push = |a: u32, b: u32, reason: u32, reader: u32| {
            let (from, to) = if a < b { (a, b) } else { (b, a) };
            out.push(Pair { from, to, reason, reader_first: reason == WRITE_READ && reader == from });
        };
        let mut path: Vec<u32> = Vec::new();
        for &(node, rank, writes) in &self.entries {
            path.clear();
            path.extend(self.up(node));
            if policy == OverlapPolicy::Isolate {
                // Writers are not ordered among themselves: a reader meets each of them, and a
                // writer each reader above it.
                for (j, &m) in path.iter().enumerate() {
                    if !writes {
                        for &w in self.writers(m).iter().filter(|&&w| w != rank) {
                            push(w, rank, WRITE_READ, rank);
                        }
                    } else if j > 0 {
                        for &r in self.readers(m).iter().filter(|&&r| r != rank) {
                            push(rank, r, WRITE_READ, r);
                        }
                    }
                }
                continue;
            }
            // The writers on the path from the root down to `node` are totally ordered (each
            // pair overlaps). Walking down, keep this task's nearest neighbours among them.
            let (mut pred, mut succ, mut member) = (None::<u32>, None::<u32>, false);
            for (j, &m) in path.iter().enumerate().rev() {
                let chain = self.writers(m);
                let (before, after) = match chain.binary_search(&rank) {
                    Ok(pos) => {
                        member = true;
                        (pos.checked_sub(1).map(|k| chain[k]), chain.get(pos + 1).copied())
                    }
                    Err(pos) => (pos.checked_sub(1).map(|k| chain[k]), chain.get(pos).copied()),
                };
                pred = pred.max(before);
                succ = match (succ, after) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                // A writer and the readers of an ancestor: only those with no writer of that
                // ancestor's path between them need an edge; the chain orders the rest.
                if writes && j > 0 && !member {
                    let readers = self.readers(m);
                    let lo = pred.map_or(0, |p| readers.partition_point(|&r| r <= p));
                    let hi = succ.map_or(readers.len(), |s| readers.partition_point(|&r| r < s));
                    for &r in readers.get(lo..hi).unwrap_or_default().iter().filter(|&&r| r != rank) {
                        push(rank, r, WRITE_READ, r);
                    }
                }
            }
            // A reader whose task also writes on this path is ordered through that write.
            if writes || !member {
                let (reason, reader) = if writes { (WRITE_WRITE, u32::MAX) } else { (WRITE_READ, rank) };
                if let Some(p) = pred {
                    push(p, rank, reason, reader);
                }
                if let Some(s) = succ {
                    push(rank, s, reason, reader);
                }
            }
        }
    }

    /// Under `overlap: isolate`: the levels (group numbers) that hold two different tasks
    /// with overlapping writes. `level_of_rank` gives each rank's level.
    pub(crate) fn conflicting_levels(&self, level_of_rank: impl Fn(u32) -> u32) -> BTreeSet<u32> {
        // Per node, its writers as (level, rank), sorted.
        let by_level: Vec<(u32, u32)> = {
            let mut v: Vec<(u32, u32)> = self.writers.iter().map(|&r| (level_of_rank(r), r)).collect();
            for k in 0..self.parent.len() {
                v[self.w_start[k] as usize..self.w_start[k + 1] as usize].sort_unstable();
            }
            v
        };
        let row = |node: u32| {
            let k = node as usize;
            &by_level[self.w_start[k] as usize..self.w_start[k + 1] as usize]
        };
        let mut out = BTreeSet::new();
        for &(node, rank, writes) in &self.entries {
            if !writes {
                continue;
            }
            let level = level_of_rank(rank);
            if out.contains(&level) {
                continue;
            }
            for m in self.up(node) {
                let r = row(m);
                let from = r.partition_point(|&(l, _)| l < level);
                if r[from..].iter().take_while(|&&(l, _)| l == level).any(|&(_, other)| other != rank) {
                    out.insert(level);
                    break;
                }
            }
        }
        out
    }
}

/// Chains the tasks of one phase that modify paths of the same serial class.
pub(crate) fn serial_pairs(plan: &Plan, tasks: &[usize], order: &Order, out: &mut Vec<Pair>) {
    for (k, (_, class)) in plan.boundaries.serial.iter().enumerate() {
        let members: Vec<u32> = tasks.iter().filter(|&&t| plan.tasks[t].modifies.overlaps(class)).map(|&t| order.rank[t]).collect();
        for w in members.windows(2) {
            out.push(Pair { from: w[0], to: w[1], reason: SERIAL + to_u32(k), reader_first: false });
        }
    }
}

/// Sorts and merges pairs (one per task pair, the strongest reason first: write/write, then
/// write/read, then serial classes) and drops those a direct declared edge already orders.
pub(crate) fn settle(mut pairs: Vec<Pair>, order: &Order, index: &TaskIndex) -> Vec<Pair> {
    pairs.sort_unstable();
    pairs.dedup_by(|next, kept| {
        if (next.from, next.to) != (kept.from, kept.to) {
            return false;
        }
        // Two write/read overlaps in opposite directions: the earlier task still reads
        // something the later one writes.
        if kept.reason == WRITE_READ && next.reason == WRITE_READ {
            kept.reader_first |= next.reader_first;
        }
        true
    });
    pairs.retain(|p| !index.has_declared(order.order[p.from as usize], order.order[p.to as usize]));
    pairs
}

/// Drops conflict pairs implied by a two-step path of other edges inside the phase (declared
/// or conflict): with `u → w → v` present, `u → v` adds no ordering. Each dropped pair is
/// implied within the original edge set, and a DAG keeps its reachability when any such
/// edges are removed (its transitive reduction survives), so no ordering is lost.
pub(crate) fn drop_implied(pairs: Vec<Pair>, plan: &Plan, order: &Order, index: &TaskIndex) -> Vec<Pair> {
    const DECLARED: u32 = u32::MAX;
    let n = order.order.len();
    let declared = index
        .declared
        .iter()
        .filter(|d| d.from != d.to && plan.tasks[d.from].phase == plan.tasks[d.to].phase)
        .map(|d| (order.rank[d.to] as usize, (order.rank[d.from], DECLARED)));
    let conflict = pairs.iter().enumerate().map(|(k, p)| (p.to as usize, (p.from, to_u32(k))));
    let preds: Csr<(u32, u32)> = Csr::new(n, declared.chain(conflict));
    // mark[u] = (v, tag) while `v` is examined and `u → v` is an edge with that tag.
    let mut mark: Vec<(u32, u32)> = vec![(u32::MAX, DECLARED); n];
    let mut implied = vec![false; pairs.len()];
    for v in 0..n {
        let row = preds.row(v);
        if row.len() < 2 {
            continue;
        }
        let vv = to_u32(v);
        for &(u, tag) in row {
            mark[u as usize] = (vv, tag);
        }
        for &(w, _) in row {
            for &(u, _) in preds.row(w as usize) {
                let (seen, tag) = mark[u as usize];
                if seen == vv && tag != DECLARED {
                    implied[tag as usize] = true;
                }
            }
        }
    }
    pairs.into_iter().zip(implied).filter(|(_, gone)| !gone).map(|(p, _)| p).collect()
}

/// `reader-first` warnings for settled pairs: the first [`READER_FIRST_SHOWN`] in detail, then
/// one summary with the count of the rest (a plan with thousands of them needs restructuring,
/// not thousands of lines).
pub(crate) fn reader_first_warnings(plan: &Plan, pairs: &[Pair], order: &Order, index: &TaskIndex, out: &mut Vec<PlanIssue>) {
    let mut search = PathSearch::new(plan.tasks.len());
    let mut more = 0usize;
    let mut shown = 0usize;
    for p in pairs.iter().filter(|p| p.reason == WRITE_READ && p.reader_first) {
        let (reader, writer) = (order.order[p.from as usize], order.order[p.to as usize]);
        if search.declared_path(index, order, reader, writer) {
            continue;
        }
        if shown == READER_FIRST_SHOWN {
            more += 1;
            continue;
        }
        shown += 1;
        let (r, w) = (&plan.tasks[reader], &plan.tasks[writer]);
        let what = first_overlap(&r.reads, &w.modifies).map_or_else(String::new, |(read, written)| {
            if read == written { format!(" `{read}`") } else { format!(" `{read}` (overlapping `{written}`)") }
        });
        let pointer = if w.depends_on.is_empty() { format!("/tasks/{writer}") } else { format!("/tasks/{writer}/depends_on") };
        out.push(
            PlanIssue::warning(
                "reader-first",
                pointer,
                format!("task `{}` reads{what}, which `{}` writes, but runs before it", r.id, w.id),
            )
            .with_help(format!(
                "if `{}` needs the change, add `{}` to the depends_on of `{}`; if it should run first, add `{}` to the depends_on of `{}`",
                r.id, w.id, r.id, r.id, w.id
            )),
        );
    }
    if more > 0 {
        out.push(
            PlanIssue::warning("reader-first", "/tasks", format!("{more} more tasks read paths that a later task of their phase writes"))
                .with_help("declare the intended order with depends_on (writer first when the reader needs the change)"),
        );
    }
}

fn first_overlap(reads: &Scope, writes: &Scope) -> Option<(String, String)> {
    reads.overlapping(writes).next().map(|(a, b)| (a.to_string(), b.to_string()))
}

/// A reusable depth-first search for declared paths.
struct PathSearch {
    stamp: Vec<u32>,
    round: u32,
    stack: Vec<usize>,
}

impl PathSearch {
    fn new(n: usize) -> Self {
        Self { stamp: vec![0; n], round: 0, stack: Vec::new() }
    }

    /// Is there a declared path `from ⇝ to` (same phase, `from` earlier)? Visits only tasks
    /// ranked between them and gives up (answering no) after [`PATH_SEARCH_BUDGET`] tasks.
    fn declared_path(&mut self, index: &TaskIndex, order: &Order, from: usize, to: usize) -> bool {
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            self.stamp.fill(0);
            self.round = 1;
        }
        let limit = order.rank[to];
        let mut budget = PATH_SEARCH_BUDGET;
        self.stack.clear();
        self.stack.push(from);
        while let Some(u) = self.stack.pop() {
            for &v in index.succ.row(u) {
                if v == to {
                    return true;
                }
                if order.rank[v] < limit && self.stamp[v] != self.round && budget > 0 {
                    self.stamp[v] = self.round;
                    budget -= 1;
                    self.stack.push(v);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::index;
    use crate::order::total_order;
    use fugue_core::Phase;

    /// The pairs of a one-phase plan given as (modifies, reads) per task, sorted, as
    /// `(from, to, reason, reader_first)` by task index (plan order is the total order here).
    fn pairs_of(tasks: &[(&[&str], &[&str])], policy: &str) -> Vec<(u32, u32, u32, bool)> {
        let list: Vec<serde_json::Value> = tasks
            .iter()
            .enumerate()
            .map(|(i, (m, r))| serde_json::json!({ "id": format!("t{i}"), "agent": "x", "modifies": m, "reads": r }))
            .collect();
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "version": 1, "parallelization": { "overlap": policy }, "tasks": list
        }))
        .expect("plan");
        let idx = index(&plan).expect("index");
        let order = total_order(&plan, &idx);
        let trie = PhaseTrie::build(&plan, order.phase_tasks(Phase::Implementation), &order);
        let mut out = Vec::new();
        trie.pairs(plan.parallelization.overlap, &mut out);
        let mut v: Vec<_> = settle(out, &order, &idx).into_iter().map(|p| (p.from, p.to, p.reason, p.reader_first)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn writers_on_one_path_form_a_chain() {
        // Six overlapping pairs, three edges: src/** → src/a/** → src/a/b.rs → the reader.
        let got = pairs_of(&[(&["src/**"], &[]), (&["src/a/**"], &[]), (&["src/a/b.rs"], &[]), (&[], &["src/a/b.rs"])], "serialize");
        assert_eq!(got, [(0, 1, WRITE_WRITE, false), (1, 2, WRITE_WRITE, false), (2, 3, WRITE_READ, false)]);
    }

    #[test]
    fn isolated_writers_each_meet_the_reader() {
        let got = pairs_of(&[(&["src/**"], &[]), (&["src/a/**"], &[]), (&["src/a/b.rs"], &[]), (&[], &["src/a/b.rs"])], "isolate");
        assert_eq!(got, [(0, 3, WRITE_READ, false), (1, 3, WRITE_READ, false), (2, 3, WRITE_READ, false)]);
    }

    #[test]
    fn ancestor_readers_need_an_edge_only_when_no_writer_lies_between() {
        let got = pairs_of(
            &[
                (&[], &["src/**"]),  // 0 reads src
                (&["src/a/x"], &[]), // 1 writes below src
                (&["src/**"], &[]),  // 2 writes src
                (&[], &["src/**"]),  // 3 reads src
                (&["src/a/y"], &[]), // 4 writes below src (not overlapping 1)
            ],
            "serialize",
        );
        // 0–4 is ordered through 2 (0 → 2 → 4), so it gets no edge of its own.
        assert_eq!(
            got,
            [
                (0, 1, WRITE_READ, true),
                (0, 2, WRITE_READ, true),
                (1, 2, WRITE_WRITE, false),
                (2, 3, WRITE_READ, false),
                (2, 4, WRITE_WRITE, false),
                (3, 4, WRITE_READ, true),
            ]
        );
    }

    #[test]
    fn unrelated_paths_and_readers_make_no_pairs() {
        let got = pairs_of(&[(&["src/ab/**"], &["docs/**"]), (&["src/a/**"], &["docs/**"]), (&["**/*.md"], &[])], "serialize");
        // `**/*.md` has an empty literal prefix: it overlaps everything, the rest nothing.
        assert_eq!(got, [(0, 2, WRITE_WRITE, false), (1, 2, WRITE_WRITE, false)]);
    }
}

//! The path trie that makes a conflict check cost O(path depth + matches).
//!
//! Two patterns overlap when the literal prefix of one is a path-component prefix of the other
//! (`fugue_core::Pattern::overlaps`). So every claim is stored at the node its literal
//! components lead to, and the claims overlapping a new one are exactly those stored on the way
//! down to its node (its ancestors, the root included: a pattern that starts with a glob lives at
//! the root and overlaps everything) plus those in the subtree below it (its descendants).
//!
//! Each node counts the entries in its subtree, and how many of them are writes, so a walk never
//! enters a subtree that cannot answer: empty subtrees do not exist (nodes are pruned when their
//! last entry leaves) and a read claim skips subtrees that hold only reads. The walk therefore
//! touches the nodes on the claim's path and the nodes leading to actual matches. Because the
//! counts are exact, "is there any conflict?" needs no entries at all: a non-zero count of
//! conflicting entries at an ancestor, or in the subtree of the claim's node, is the answer
//! ([`Trie::any`], O(path depth)).
//!
//! Serial resource classes live under a second root, one component per class name, so the same
//! walk answers "does anyone hold this class" with an exact-name match.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::ControlFlow;

use fugue_core::Pattern;
use fugue_core::state::LockMode;

use crate::claim::Resource;

/// The root of path claims.
pub(crate) const PATH_ROOT: u32 = 0;
/// The root of serial resource classes.
pub(crate) const CLASS_ROOT: u32 = 1;

/// One stored claim: which request holds it, which of its claims it is, and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) req: u64,
    pub(crate) idx: u32,
    pub(crate) mode: LockMode,
}

/// Two claims conflict unless both are reads.
pub(crate) fn modes_conflict(a: LockMode, b: LockMode) -> bool {
    a == LockMode::Write || b == LockMode::Write
}

/// A hash map with the cheap [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Debug, Default)]
struct Node {
    /// The parent and this node's component symbol: its key in `Trie::edges`.
    parent: u32,
    sym: u32,
    /// This node's index in its parent's `children`.
    slot: u32,
    /// (symbol, node) of each child: enough to probe the child's edge without touching it.
    children: Vec<(u32, u32)>,
    entries: Vec<Entry>,
}

/// What a walk needs to know about a node before deciding to look inside it. Kept in the node's
/// edge (the roots keep theirs apart), so one probe both finds a child and says whether it is
/// worth visiting.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Entries in this node's subtree, this node included.
    total: u32,
    /// Write entries in this node's subtree, this node included.
    writes: u32,
    /// Entries stored at this node itself.
    own: u32,
    /// Write entries stored at this node itself.
    own_writes: u32,
}

impl Counts {
    /// Entries in the subtree that a claim in `mode` conflicts with.
    fn wanted(self, mode: LockMode) -> u32 {
        if mode == LockMode::Write { self.total } else { self.writes }
    }

    /// Entries at the node itself that a claim in `mode` conflicts with.
    fn wanted_own(self, mode: LockMode) -> u32 {
        if mode == LockMode::Write { self.own } else { self.own_writes }
    }

    fn add(&mut self, write: u32, own: bool) {
        self.total += 1;
        self.writes += write;
        if own {
            self.own += 1;
            self.own_writes += write;
        }
    }

    fn sub(&mut self, write: u32, own: bool) {
        self.total -= 1;
        self.writes -= write;
        if own {
            self.own -= 1;
            self.own_writes -= write;
        }
    }
}

/// An edge from a parent to a child, with the child's counts.
#[derive(Debug, Clone, Copy)]
struct Edge {
    child: u32,
    counts: Counts,
}

/// A multi-map from literal path prefixes to claims.
///
/// Components are interned to symbols, and the edges of all nodes live in one hash table keyed
/// by (parent, symbol) that also holds the child's counts: a step down is one probe of integer
/// keys, with no string compare in a per-node map and no second lookup for the counts. The
/// symbol table only grows (it holds the distinct component names ever claimed, which a run's
/// plan bounds).
#[derive(Debug)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    roots: [Counts; 2],
    free: Vec<u32>,
    edges: FxMap<(u32, u32), Edge>,
    symbols: FxMap<Box<str>, u32>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default(), Node::default()],
            roots: [Counts::default(); 2],
            free: Vec::new(),
            edges: FxMap::default(),
            symbols: FxMap::default(),
        }
    }
}

impl Trie {
    /// Stores a claim of request `req` (its `idx`-th).
    pub(crate) fn insert_claim(&mut self, resource: &Resource, mode: LockMode, req: u64, idx: u32) {
        let entry = Entry { req, idx, mode };
        match resource {
            Resource::Path(p) => self.insert(PATH_ROOT, p.literal_components(), entry),
            Resource::Serial(class) => self.insert(CLASS_ROOT, [class.as_str()], entry),
        }
    }

    /// Removes a claim stored by [`Trie::insert_claim`].
    pub(crate) fn remove_claim(&mut self, resource: &Resource, req: u64, idx: u32) -> bool {
        match resource {
            Resource::Path(p) => self.remove(PATH_ROOT, p.literal_components(), req, idx),
            Resource::Serial(class) => self.remove(CLASS_ROOT, [class.as_str()], req, idx),
        }
    }

    /// Visits the stored entries that conflict with a claim of `resource` in `mode`.
    pub(crate) fn visit_claim<B>(&self, resource: &Resource, mode: LockMode, f: impl FnMut(Entry) -> ControlFlow<B>) -> ControlFlow<B> {
        match resource {
            Resource::Path(p) => self.visit_path(p, mode, f),
            Resource::Serial(class) => self.visit_class(class, f),
        }
    }

    /// Visits the stored entries that conflict with a claim of `pattern` in `mode`.
    pub(crate) fn visit_path<B>(&self, pattern: &Pattern, mode: LockMode, f: impl FnMut(Entry) -> ControlFlow<B>) -> ControlFlow<B> {
        self.visit(PATH_ROOT, pattern.literal_components(), mode, f)
    }

    /// Visits the holders of serial class `class` (always an exclusive claim).
    pub(crate) fn visit_class<B>(&self, class: &str, f: impl FnMut(Entry) -> ControlFlow<B>) -> ControlFlow<B> {
        self.visit(CLASS_ROOT, [class], LockMode::Write, f)
    }

    /// Number of entries stored.
    pub(crate) fn len(&self) -> usize {
        (self.roots[0].total + self.roots[1].total) as usize
    }

    fn symbol(&mut self, comp: &str) -> u32 {
        if let Some(&sym) = self.symbols.get(comp) {
            return sym;
        }
        let sym = to_u32(self.symbols.len());
        self.symbols.insert(comp.into(), sym);
        sym
    }

    /// The edge from `node` along `comp`, if any.
    fn step(&self, node: u32, comp: &str) -> Option<Edge> {
        let sym = *self.symbols.get(comp)?;
        self.edges.get(&(node, sym)).copied()
    }

    fn counts_mut(&mut self, node: u32) -> Option<&mut Counts> {
        if let Some(root) = self.roots.get_mut(node as usize) {
            return Some(root);
        }
        let n = &self.nodes[node as usize];
        self.edges.get_mut(&(n.parent, n.sym)).map(|e| &mut e.counts)
    }

    /// Creates the child of `parent` along `sym`.
    fn alloc(&mut self, parent: u32, sym: u32) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::default());
                to_u32(self.nodes.len() - 1)
            }
        };
        let slot = to_u32(self.nodes[parent as usize].children.len());
        self.nodes[parent as usize].children.push((sym, id));
        let node = &mut self.nodes[id as usize];
        node.parent = parent;
        node.sym = sym;
        node.slot = slot;
        self.edges.insert((parent, sym), Edge { child: id, counts: Counts::default() });
        id
    }

    /// Unlinks an empty leaf from its parent and recycles it.
    fn unlink(&mut self, id: u32) {
        let (parent, sym, slot) = {
            let n = &self.nodes[id as usize];
            (n.parent, n.sym, n.slot)
        };
        self.edges.remove(&(parent, sym));
        let siblings = &mut self.nodes[parent as usize].children;
        siblings.swap_remove(slot as usize);
        if let Some(&(_, moved)) = siblings.get(slot as usize) {
            self.nodes[moved as usize].slot = slot;
        }
        let dead = &mut self.nodes[id as usize];
        dead.children.clear();
        dead.entries.clear();
        self.free.push(id);
    }

    /// Stores `entry` under the node reached from `root` by `comps`.
    pub(crate) fn insert<'a>(&mut self, root: u32, comps: impl IntoIterator<Item = &'a str>, entry: Entry) {
        let mut node = root;
        for comp in comps {
            let sym = self.symbol(comp);
            node = match self.edges.get(&(node, sym)) {
                Some(e) => e.child,
                None => self.alloc(node, sym),
            };
        }
        self.nodes[node as usize].entries.push(entry);
        self.recount(root, node, entry.mode, Counts::add);
    }

    /// Applies `change` to the counts of `node` (as the owner of the entry) and of each of its
    /// ancestors up to `root`.
    fn recount(&mut self, root: u32, node: u32, mode: LockMode, change: fn(&mut Counts, u32, bool)) {
        let write = u32::from(mode == LockMode::Write);
        let mut n = node;
        loop {
            if let Some(c) = self.counts_mut(n) {
                change(c, write, n == node);
            }
            if n == root {
                break;
            }
            n = self.nodes[n as usize].parent;
        }
    }

    /// Removes the entry of (`req`, `idx`) stored under `comps`; prunes nodes left empty.
    /// Returns false when no such entry was stored (the trie is left unchanged).
    pub(crate) fn remove<'a>(&mut self, root: u32, comps: impl IntoIterator<Item = &'a str>, req: u64, idx: u32) -> bool {
        let mut node = root;
        for comp in comps {
            match self.step(node, comp) {
                Some(e) => node = e.child,
                None => return false,
            }
        }
        let entries = &mut self.nodes[node as usize].entries;
        let Some(pos) = entries.iter().position(|e| e.req == req && e.idx == idx) else {
            return false;
        };
        let removed = entries.swap_remove(pos);
        self.recount(root, node, removed.mode, Counts::sub);
        // Unlink every node whose subtree became empty, bottom up (the roots stay).
        let mut n = node;
        while n != root && self.counts_mut(n).is_some_and(|c| c.total == 0) {
            let parent = self.nodes[n as usize].parent;
            self.unlink(n);
            n = parent;
        }
        true
    }

    /// Does any stored entry conflict with a claim at `comps` in `mode`? Answered from the
    /// counts alone, O(path depth): an ancestor's own entries, or anything in the subtree of the
    /// claim's node (the counts are exact, so a non-zero count is a conflict).
    pub(crate) fn any<'a>(&self, root: u32, comps: impl IntoIterator<Item = &'a str>, mode: LockMode) -> bool {
        let mut node = root;
        let mut counts = self.roots[root as usize];
        if counts.wanted(mode) == 0 {
            return false;
        }
        for comp in comps {
            if counts.wanted_own(mode) > 0 {
                return true;
            }
            match self.step(node, comp) {
                Some(e) if e.counts.wanted(mode) > 0 => {
                    node = e.child;
                    counts = e.counts;
                }
                _ => return false,
            }
        }
        true
    }

    /// [`Trie::any`] for a path pattern.
    pub(crate) fn any_path(&self, pattern: &Pattern, mode: LockMode) -> bool {
        self.any(PATH_ROOT, pattern.literal_components(), mode)
    }

    /// [`Trie::any`] for a serial class.
    pub(crate) fn any_class(&self, class: &str) -> bool {
        self.any(CLASS_ROOT, [class], LockMode::Write)
    }

    /// Calls `f` with every stored entry that overlaps the claim at `comps` and conflicts with
    /// `mode`: entries on the way down (ancestors) and in the subtree below (descendants).
    pub(crate) fn visit<'a, B>(
        &self,
        root: u32,
        comps: impl IntoIterator<Item = &'a str>,
        mode: LockMode,
        mut f: impl FnMut(Entry) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let mut node = root;
        let mut counts = self.roots[root as usize];
        if counts.wanted(mode) == 0 {
            return ControlFlow::Continue(());
        }
        self.visit_entries(node, counts, mode, &mut f)?;
        for comp in comps {
            match self.step(node, comp) {
                Some(e) if e.counts.wanted(mode) > 0 => {
                    node = e.child;
                    counts = e.counts;
                }
                // Nothing stored at or below this prefix: no ancestors left, no descendants.
                _ => return ControlFlow::Continue(()),
            }
            self.visit_entries(node, counts, mode, &mut f)?;
        }
        if counts.wanted(mode) == counts.wanted_own(mode) {
            return ControlFlow::Continue(());
        }
        let mut stack: Vec<u32> = Vec::new();
        let push_children = |stack: &mut Vec<u32>, node: u32| {
            for &(sym, _) in &self.nodes[node as usize].children {
                stack.extend(self.edges.get(&(node, sym)).filter(|e| e.counts.wanted(mode) > 0).map(|e| e.child));
            }
        };
        push_children(&mut stack, node);
        while let Some(n) = stack.pop() {
            let own = &self.nodes[n as usize];
            if let Some(e) = self.edges.get(&(own.parent, own.sym)) {
                self.visit_entries(n, e.counts, mode, &mut f)?;
            }
            push_children(&mut stack, n);
        }
        ControlFlow::Continue(())
    }

    fn visit_entries<B>(&self, node: u32, counts: Counts, mode: LockMode, f: &mut impl FnMut(Entry) -> ControlFlow<B>) -> ControlFlow<B> {
        if counts.wanted_own(mode) == 0 {
            return ControlFlow::Continue(());
        }
        for e in &self.nodes[node as usize].entries {
            if modes_conflict(mode, e.mode) {
                f(*e)?;
            }
        }
        ControlFlow::Continue(())
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The Firefox/rustc hash: path components are short strings, and SipHash's DoS resistance
/// buys nothing here (the keys come from the plan, not from an adversary).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(req: u64, mode: LockMode) -> Entry {
        Entry { req, idx: 0, mode }
    }

    fn comps(s: &str) -> Vec<&str> {
        s.split('/').filter(|c| !c.is_empty()).collect()
    }

    fn hits(t: &Trie, path: &str, mode: LockMode) -> Vec<u64> {
        let mut out = Vec::new();
        let _ = t.visit::<()>(PATH_ROOT, comps(path), mode, |e| {
            out.push(e.req);
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_ancestors_and_descendants_only() {
        let mut t = Trie::default();
        t.insert(PATH_ROOT, comps("src"), e(1, LockMode::Write));
        t.insert(PATH_ROOT, comps("src/a/b"), e(2, LockMode::Write));
        t.insert(PATH_ROOT, comps("src/c"), e(3, LockMode::Write));
        t.insert(PATH_ROOT, comps("docs"), e(4, LockMode::Write));
        assert_eq!(hits(&t, "src/a", LockMode::Read), vec![1, 2]);
        assert_eq!(hits(&t, "src", LockMode::Read), vec![1, 2, 3]);
        assert_eq!(hits(&t, "", LockMode::Read), vec![1, 2, 3, 4], "a root claim overlaps everything");
        assert_eq!(hits(&t, "lib", LockMode::Write), Vec::<u64>::new());
    }

    #[test]
    fn any_agrees_with_visit() {
        let mut t = Trie::default();
        t.insert(PATH_ROOT, comps("a/b/c"), e(1, LockMode::Read));
        t.insert(PATH_ROOT, comps("a/x"), e(2, LockMode::Write));
        t.insert(PATH_ROOT, comps("q"), e(3, LockMode::Read));
        for path in ["", "a", "a/b", "a/b/c", "a/b/c/d", "a/x", "a/x/y", "a/y", "q", "q/r", "z"] {
            for mode in [LockMode::Read, LockMode::Write] {
                assert_eq!(t.any(PATH_ROOT, comps(path), mode), !hits(&t, path, mode).is_empty(), "{path} {mode:?}");
            }
        }
    }

    #[test]
    fn reads_do_not_conflict_with_reads() {
        let mut t = Trie::default();
        t.insert(PATH_ROOT, comps("a/b"), e(1, LockMode::Read));
        t.insert(PATH_ROOT, comps("a"), e(2, LockMode::Read));
        assert!(hits(&t, "a", LockMode::Read).is_empty());
        assert_eq!(hits(&t, "a", LockMode::Write), vec![1, 2]);
    }

    #[test]
    fn remove_prunes_and_recycles_nodes() {
        let mut t = Trie::default();
        t.insert(PATH_ROOT, comps("a/b/c"), e(1, LockMode::Write));
        t.insert(PATH_ROOT, comps("a"), e(2, LockMode::Read));
        assert_eq!(t.len(), 2);
        assert!(t.remove(PATH_ROOT, comps("a/b/c"), 1, 0));
        assert!(!t.remove(PATH_ROOT, comps("a/b/c"), 1, 0), "already gone");
        assert_eq!(t.len(), 1);
        let a = t.step(PATH_ROOT, "a").expect("a stays").child;
        assert!(t.nodes[a as usize].children.is_empty());
        assert!(t.step(a, "b").is_none());
        assert_eq!(t.free.len(), 2, "b and c recycled");
        assert!(t.remove(PATH_ROOT, comps("a"), 2, 0));
        assert_eq!(t.len(), 0);
        assert!(t.nodes[PATH_ROOT as usize].children.is_empty());
        t.insert(PATH_ROOT, comps("x/y"), e(3, LockMode::Write));
        assert_eq!(t.nodes.len(), 5, "freed nodes are reused");
        assert_eq!(hits(&t, "x", LockMode::Read), vec![3]);
    }

    #[test]
    fn classes_are_separate_from_paths() {
        let mut t = Trie::default();
        t.insert(CLASS_ROOT, ["migrations"], e(1, LockMode::Write));
        assert!(hits(&t, "migrations", LockMode::Write).is_empty());
        let mut found = Vec::new();
        let _ = t.visit::<()>(CLASS_ROOT, ["migrations"], LockMode::Write, |e| {
            found.push(e.req);
            ControlFlow::Continue(())
        });
        assert_eq!(found, vec![1]);
        let flow = t.visit(CLASS_ROOT, ["manifests"], LockMode::Write, |_| ControlFlow::Break(()));
        assert_eq!(flow, ControlFlow::Continue(()));
    }
}

//! What each slot costs on disk: files, the build caches apart, each inode once.

use fugue_worktrees::AcquireRequest;

use crate::common::{Fixture, task, write};

#[test]
fn a_slots_disk_use_counts_its_caches_apart_and_hard_links_once() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(2));
    let w = pool.acquire(&AcquireRequest::new(task("t"))).expect("acquire");
    let before = pool.disk_usage().expect("disk");
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].slot, "wt-1");
    assert!(!before[0].missing && before[0].bytes > 0 && before[0].cache_bytes == 0, "{before:?}");
    // The slot's tracked files are counted: the fixture's six files at least.
    assert!(before[0].files >= 6, "{before:?}");

    // A 1 MiB build artefact in a nested `target/` (a `keep_ignored` name matches at any depth),
    // and a hard link to it elsewhere in the cache.
    let blob: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::create_dir_all(w.path.join("crates/x/target/debug")).expect("mkdir");
    std::fs::write(w.path.join("crates/x/target/debug/big.bin"), &blob).expect("write");
    std::fs::hard_link(w.path.join("crates/x/target/debug/big.bin"), w.path.join("crates/x/target/link.bin")).expect("link");
    write(&w.path, "notes.txt", "not a cache\n");
    let after = pool.disk_usage().expect("disk");
    let mib = 1024 * 1024;
    assert!((mib..mib + 64 * 1024).contains(&after[0].cache_bytes), "one MiB of cache, counted once: {after:?}");
    assert!(after[0].bytes >= before[0].bytes + after[0].cache_bytes, "{before:?} → {after:?}");
    assert_eq!(after[1], before[1], "the other slot is unchanged");
}

#[test]
fn a_slot_without_a_checkout_is_said_to_have_none() {
    let fx = Fixture::new();
    let pool = fx.pool(fx.spec(1));
    let usage = pool.disk_usage().expect("disk");
    assert_eq!(usage.len(), 1);
    assert!(usage[0].missing && usage[0].bytes == 0, "{usage:?}");
}

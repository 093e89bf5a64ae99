//! `fugue pool`: the pool-manager protocol lines, and a pool in the old default dir
//! `.claude/worktree-pool` moved to `.claude/worktrees` by the first command that opens it.

use crate::runs::repo;
use crate::{fugue, temp};

#[test]
fn protocol_lines_and_the_move_out_of_the_old_default_dir() {
    let dir = temp();
    let repo = repo(dir.path(), "");
    let root = repo.canonicalize().expect("canonical");
    let old = ["--dir", ".claude/worktree-pool"];

    let out = fugue(&repo, &[&["pool", "init", "2"][..], &old].concat());
    assert_eq!((out.code, out.stdout.as_str()), (0, "Pool initialized: 2 slots available\n"), "{}", out.stderr);
    let out = fugue(&repo, &[&["pool", "acquire", "held"][..], &old].concat());
    let old_slot = root.join(".claude/worktree-pool/wt-1");
    assert_eq!(out.stdout.lines().last(), Some(format!("wt-1|{}|auto/held", old_slot.display()).as_str()), "{}", out.stderr);
    std::fs::write(old_slot.join("wip.txt"), "work in progress\n").expect("write");
    assert!(!out.stderr.contains("moved"), "an explicit old dir stays: {}", out.stderr);

    // The default dir: the first command moves the pool and says so on stderr only.
    let out = fugue(&repo, &["pool", "status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let new = root.join(".claude/worktrees");
    assert!(
        out.stderr.contains(&format!(
            "moved the worktree pool from {} to {}: moved wt-1",
            root.join(".claude/worktree-pool").display(),
            new.display()
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert!(out.stdout.contains(&format!("wt-1|busy|held|{}|auto/held|", new.join("wt-1").display())), "{}", out.stdout);
    assert!(new.join("wt-1/wip.txt").exists() && !root.join(".claude/worktree-pool").exists());

    // Then the protocol, exactly, at the new place, with nothing more to move.
    let out = fugue(&repo, &["pool", "acquire", "held"]);
    assert_eq!(out.stdout, format!("wt-1|{}|auto/held\n", new.join("wt-1").display()), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    let out = fugue(&repo, &["pool", "acquire", "other"]);
    assert_eq!(out.stdout, format!("wt-2|{}|auto/other\n", new.join("wt-2").display()), "{}", out.stderr);
    let out = fugue(&repo, &["pool", "acquire", "third"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "POOL_EXHAUSTED\n"), "{}", out.stderr);
    let out = fugue(&repo, &["pool", "release", "wt-1"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "RELEASED:wt-1\n"), "{}", out.stderr);
    let out = fugue(&repo, &["pool", "health"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "HEALTHY\n"), "{}", out.stderr);
}

#[test]
fn pool_status_shows_the_disk_each_slot_uses_after_the_protocol_lines() {
    let dir = temp();
    let repo = repo(dir.path(), "");
    let out = fugue(&repo, &["pool", "init", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = fugue(&repo, &["pool", "acquire", "t"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let slot = repo.canonicalize().expect("canonical").join(".claude/worktrees/wt-1");
    std::fs::create_dir_all(slot.join("target")).expect("mkdir");
    std::fs::write(slot.join("target/cache.bin"), vec![7u8; 2 * 1024 * 1024]).expect("write");
    let out = fugue(&repo, &["pool", "status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    // The protocol lines first, unchanged.
    assert!(lines[1].starts_with("wt-1|busy|t|") && lines[2].starts_with("wt-2|free|"), "{}", out.stdout);
    let disk = lines.iter().position(|l| l.starts_with("Disk: ")).expect("a Disk line");
    assert!(disk > 2, "after the slots: {}", out.stdout);
    assert!(lines[disk].contains("in 1 slot(s), of which 2.0 MiB build caches"), "{}", out.stdout);
    assert!(lines[disk + 1].starts_with("  wt-1: ") && lines[disk + 1].ends_with("(caches 2.0 MiB)"), "{}", out.stdout);
    assert_eq!(lines[disk + 2], "  wt-2: no checkout", "a slot never used has none: {}", out.stdout);
    // No line a `wt-N|…` reader would take for a slot.
    assert_eq!(lines.iter().filter(|l| l.starts_with("wt-")).count(), 2, "{}", out.stdout);
}

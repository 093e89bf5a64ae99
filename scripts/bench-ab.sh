#!/usr/bin/env bash
# Runs two builds of the orchestrate benchmark against each other, alternating, for before/after
# figures: before, after, after, before for each part.
#
#   scripts/bench-ab.sh BEFORE_BIN AFTER_BIN [PART...]     (parts: overhead schedule memory worktrees)
#
# Build each binary with `cargo bench -p fugue-engine --bench orchestrate --no-run` in its tree
# (a `git worktree add --detach /tmp/before REV` for the old one) and copy it aside: both trees
# build to the same file name. Between runs the script waits 40 s so that the files the previous
# run deleted age out of ext4's recently-deleted window (see BENCHMARKS.md, "The disk").
# FUGUE_BENCH_MAX_N is passed through (1000 keeps an overhead pair under five minutes).
set -euo pipefail
before=${1:?usage: bench-ab.sh BEFORE_BIN AFTER_BIN [PART...]}
after=${2:?usage: bench-ab.sh BEFORE_BIN AFTER_BIN [PART...]}
shift 2
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(overhead schedule memory)
run() {
    echo "=== $1 $2 $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    FUGUE_BENCH_ONLY=$2 "$1" | grep '^|'
    sleep 40
}
for part in "${parts[@]}"; do
    run "$before" "$part"; run "$after" "$part"; run "$after" "$part"; run "$before" "$part"
done

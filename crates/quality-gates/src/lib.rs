//! The quality gates (review, tests and coverage, docs, boundary) and the QA loop.

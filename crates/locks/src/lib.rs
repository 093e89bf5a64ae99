//! The lock manager: read/write path locks, serial resources, read-only common paths, persisted and crash-safe.

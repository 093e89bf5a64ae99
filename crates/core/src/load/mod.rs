//! Plan loading (filled in next).

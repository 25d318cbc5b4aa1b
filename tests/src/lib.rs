//! Integration tests live in tests/all.

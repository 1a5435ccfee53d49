//! Service kit.

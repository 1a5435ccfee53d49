//! The CDC reconciler service.

fn main() {}

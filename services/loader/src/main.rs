//! The CDC loader service.

fn main() {}

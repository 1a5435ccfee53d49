//! The CDC extractor service.

fn main() {}

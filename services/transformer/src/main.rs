//! The CDC transformer service.

fn main() {}

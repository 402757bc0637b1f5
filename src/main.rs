// The CLI wiring lands in another branch; until then the engine is a library.
#[allow(dead_code, unused_imports)]
mod engine;

fn main() {}

//! berth as a library: the engine and the command line, so that the binary,
//! the fuzz targets and benchmarks share one build of them.

pub mod cli;
pub mod engine;

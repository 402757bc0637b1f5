//! Command-line surface: arguments, output formatting, progress.

pub mod args;
pub mod format;
pub mod table;
pub mod units;

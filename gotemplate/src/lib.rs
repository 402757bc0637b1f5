//! A subset of Go's `text/template`, evaluated over `serde_json::Value`, with
//! the functions docker adds for `--format` (`json`, `upper`, `lower`,
//! `title`, `join`, `split`, `pad`, `truncate`, `println`).
//!
//! It is its own crate so that the fuzz target (`fuzz/`) can depend on it;
//! the `berth` package is a binary and cannot be a path dependency.

mod exec;
mod gofmt;
mod parse;

pub use gofmt::{format_float_g, go_print};
pub use parse::Pos;

use serde_json::Value;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The template text is malformed.
    #[error("template: :{line}:{col}: {msg}")]
    Parse {
        line: usize,
        col: usize,
        msg: String,
    },
    /// The template is well formed but could not be applied to the data.
    #[error("template: :{line}:{col}: executing \"\" at <{at}>: {msg}")]
    Exec {
        line: usize,
        col: usize,
        at: String,
        msg: String,
    },
}

/// What `{{.Missing}}` yields: docker's list formatters run on Go structs
/// (an unknown field is an error), `inspect` falls back to raw JSON maps
/// (an unknown key prints `<no value>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    #[default]
    NoValue,
    Error,
}

#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
    missing: MissingKey,
}

impl Template {
    /// Parses a template. Errors name the line and column.
    pub fn parse(src: &str) -> Result<Self, Error> {
        Ok(Self {
            nodes: parse::parse(src)?,
            missing: MissingKey::default(),
        })
    }

    pub fn missing_key(mut self, m: MissingKey) -> Self {
        self.missing = m;
        self
    }

    /// Applies the template to `data`.
    pub fn render(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        exec::Exec::new(data, self.missing).run(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

//! How berth prints an error, the one rule for every command.
//!
//! docker's CLI prints what its daemon refused as `Error response from
//! daemon: MSG` and what it found wrong itself (a flag value, a file named
//! on the command line, a template) as a plain message. berth has no
//! daemon, but keeps the split: errors of the engine (images, containers,
//! the store, the runtime) are "daemon" errors; errors the CLI finds in the
//! user's input before it asks the engine anything are wrapped in
//! [`Client`] and print as `Error: MSG`, unless berth's CLI makes a check
//! that docker's daemon makes (its text then starts with the daemon prefix).

/// docker's prefix for errors its daemon reports.
pub const DAEMON: &str = "Error response from daemon: ";

/// An error in the user's input, found by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Client(pub String);

/// Mark an error as the CLI's own finding (see the module doc).
pub fn client(e: anyhow::Error) -> anyhow::Error {
    if e.downcast_ref::<super::Reported>().is_some() || e.downcast_ref::<Client>().is_some() {
        return e;
    }
    let msg = super::error_chain(&e);
    // A message written with docker's daemon prefix is docker's daemon's
    // check even when berth makes it in the CLI.
    if msg.starts_with(DAEMON) {
        return e;
    }
    Client(msg).into()
}

/// The message without any prefix a layer below already put on it.
fn bare(mut s: &str) -> &str {
    loop {
        let t = s
            .strip_prefix(DAEMON)
            .or_else(|| s.strip_prefix("Error: "))
            .unwrap_or(s);
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

/// The line to print for `e`.
pub fn line(e: &anyhow::Error) -> String {
    let chain = super::error_chain(e);
    if e.downcast_ref::<Client>().is_some() {
        format!("Error: {}", bare(&chain))
    } else {
        format!("{DAEMON}{}", bare(&chain))
    }
}

/// The line for a message that is already text (per-item errors).
pub fn daemon_line(msg: &str) -> String {
    format!("{DAEMON}{}", bare(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_prefix_by_origin() {
        let e = anyhow::anyhow!("Error response from daemon: No such container: x");
        assert_eq!(line(&e), "Error response from daemon: No such container: x");
        let e = anyhow::anyhow!("No such image: y");
        assert_eq!(line(&e), "Error response from daemon: No such image: y");
        let e = client(anyhow::anyhow!("invalid size: 'abc'"));
        assert_eq!(line(&e), "Error: invalid size: 'abc'");
        let e = client(anyhow::anyhow!(
            "Error response from daemon: Minimum memory limit allowed is 6MB"
        ));
        assert_eq!(
            line(&e),
            "Error response from daemon: Minimum memory limit allowed is 6MB"
        );
        assert_eq!(daemon_line("Error: x"), "Error response from daemon: x");
    }
}

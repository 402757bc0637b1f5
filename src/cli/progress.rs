//! Per-layer progress for pull and push, as docker shows it: live lines with
//! bars on a terminal, one line per state change otherwise.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::units::human_size;
use crate::engine::events::{PullEvent, PullObserver, PushEvent, PushObserver};

/// Docker's `[====>     ]` bar, 50 cells wide, and `  1.2MB/4.5MB`.
pub fn bar(current: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(total) => {
            // docker's jsonmessage: pct/2 '=' cells, '>', then 50 - that in spaces.
            let filled = ((current.min(total) as f64 / total as f64 * 100.0) as usize / 2).min(50);
            format!(
                "[{}>{}] {:>8}/{}",
                "=".repeat(filled),
                " ".repeat(50 - filled),
                human_size(current as f64),
                human_size(total as f64)
            )
        }
        None => format!("{:>8}", human_size(current as f64)),
    }
}

enum Mode {
    Tty {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
    Lines,
}

/// Renders pull/push events to stdout.
pub struct Progress {
    mode: Mode,
}

impl Progress {
    pub fn new(tty: bool) -> Self {
        let mode = if tty {
            Mode::Tty {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Mode::Lines
        };
        Progress { mode }
    }

    /// Updates (or on a pipe, prints) the line of layer `id`.
    pub fn set(&self, id: &str, text: &str, line_on_pipe: bool) {
        match &self.mode {
            Mode::Tty { multi, bars } => {
                let Ok(mut bars) = bars.lock() else { return };
                let pb = bars.entry(id.to_string()).or_insert_with(|| {
                    let pb = multi.add(ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    pb
                });
                pb.set_message(format!("{id}: {text}"));
            }
            Mode::Lines => {
                if line_on_pipe {
                    let mut o = std::io::stdout().lock();
                    let _ = writeln!(o, "{id}: {text}");
                    let _ = o.flush();
                }
            }
        }
    }

    /// Stops live drawing, leaving every layer's last line on screen.
    pub fn finish(&self) {
        if let Mode::Tty { bars, .. } = &self.mode {
            if let Ok(bars) = bars.lock() {
                for pb in bars.values() {
                    pb.finish();
                }
            }
        }
    }
}

impl PullObserver for Progress {
    fn event(&self, e: PullEvent) {
        match e {
            PullEvent::Waiting { id } => self.set(&id, "Pulling fs layer", true),
            PullEvent::Queued { id } => self.set(&id, "Waiting", true),
            PullEvent::AlreadyExists { id } => self.set(&id, "Already exists", true),
            PullEvent::Downloading { id, current, total } => {
                self.set(&id, &format!("Downloading {}", bar(current, total)), false)
            }
            PullEvent::VerifyingChecksum { id } => self.set(&id, "Verifying Checksum", true),
            PullEvent::DownloadComplete { id } => self.set(&id, "Download complete", true),
            PullEvent::Extracting { id } => self.set(&id, "Extracting", false),
            PullEvent::PullComplete { id } => self.set(&id, "Pull complete", true),
        }
    }
}

impl PushObserver for Progress {
    fn event(&self, e: PushEvent) {
        match e {
            PushEvent::Preparing { id } => self.set(&id, "Preparing", true),
            PushEvent::Pushing { id, total } => {
                self.set(&id, &format!("Pushing {}", bar(0, Some(total))), false)
            }
            PushEvent::Pushed { id } => self.set(&id, "Pushed", true),
            PushEvent::LayerExists { id } => self.set(&id, "Layer already exists", true),
            PushEvent::Mounted { id, from } => self.set(&id, &format!("Mounted from {from}"), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn docker_bar_shape() {
        let b = bar(1_200_000, Some(4_500_000));
        assert_eq!(
            b,
            "[=============>                                     ]    1.2MB/4.5MB"
        );
        assert!(bar(4_500_000, Some(4_500_000)).starts_with(&format!("[{}>]", "=".repeat(50))));
        assert_eq!(bar(1000, None), "     1kB");
    }
}

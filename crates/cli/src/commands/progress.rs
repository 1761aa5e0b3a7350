//! The pipeline's progress drawn as indicatif bars, one per stage.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use latent_terms::pipeline::Progress;

/// indicatif bars, one per stage.
pub(crate) struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    hidden: bool,
}

impl Progress for Bars {
    fn begin(&self, stage: &str, total: Option<u64>) {
        if self.hidden {
            return;
        }
        let bar = match total {
            Some(n) => {
                let bar = ProgressBar::new(n);
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix:>22} [{bar:30}] {human_pos}/{human_len}  elapsed {elapsed}  eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} {prefix:>20} {human_pos}  {per_sec}  elapsed {elapsed}",
                ) {
                    bar.set_style(style);
                }
                bar
            }
        };
        bar.set_prefix(stage.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock()
            && let Some(old) = slot.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn end(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        match self.bar.lock().ok().and_then(|s| s.as_ref().cloned()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Bars {
    /// Bars on stderr, or none with `hidden`.
    pub(crate) fn new(hidden: bool) -> Self {
        Bars {
            bar: Mutex::new(None),
            hidden,
        }
    }
}

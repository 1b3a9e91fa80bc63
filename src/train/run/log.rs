//! The run's `losses.csv`.

use std::io::Write;
use std::path::Path;

use super::*;
use crate::checkpoint::write_atomic;
use crate::error::Result;

pub(super) struct Log {
    pub(super) file: std::fs::File,
}

impl Log {
    /// Opens the CSV log; on resume, drops rows past the checkpoint so no step appears twice.
    pub(super) fn open(path: &Path, keep_until: Option<(Stage, usize)>, order: &[Stage]) -> Result<Self> {
        let header = "stage,step,loss,mse,kl,elapsed_s";
        let mut kept = vec![header.to_string()];
        if let (Some((stage, step)), Ok(text)) = (keep_until, std::fs::read_to_string(path)) {
            // Held-out rows belong to the latent stage.
            let rank = |s: &str| {
                let s = if s == LATENT_HELD_OUT { Stage::Latent.name() } else { s };
                order.iter().position(|x| x.name() == s)
            };
            let limit = rank(stage.name()).unwrap_or(0);
            for line in text.lines().skip(1) {
                let mut parts = line.split(',');
                let (Some(s), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse::<usize>().ok())) else {
                    continue;
                };
                match rank(s) {
                    Some(r) if r < limit || (r == limit && n <= step) => kept.push(line.to_string()),
                    _ => {}
                }
            }
        }
        // Replaced in one step (a kill while rewriting must not lose a long run's history),
        // then appended to.
        write_atomic(path, format!("{}\n", kept.join("\n")).as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self { file })
    }

    pub(super) fn row(&mut self, l: &StepLog, elapsed: f64) -> Result<()> {
        writeln!(self.file, "{},{},{},{},{},{:.3}", l.stage.name(), l.step, l.loss, l.mse, l.kl, elapsed)?;
        Ok(())
    }

    pub(super) fn held_out_row(&mut self, step: usize, loss: f64, elapsed: f64) -> Result<()> {
        writeln!(self.file, "{LATENT_HELD_OUT},{step},{loss},0,0,{elapsed:.3}")?;
        Ok(())
    }
}

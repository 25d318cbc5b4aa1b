//! A run's report as a person reads it (`heatbill run`'s output).

use super::*;

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "run {} of {} for {} (attempt {}{}), chain version {} (from {})",
            self.run_id,
            self.company,
            self.date,
            self.attempt,
            if self.resumed { ", resumed" } else { "" },
            self.chain_version_id,
            self.chain_effective_from
        )?;
        writeln!(
            f,
            "customers {}: {} billed, {} revised, {} unchanged, {} parked ({} shards)",
            c.customers, c.written, c.revised, c.unchanged, c.parked, self.shards
        )?;
        writeln!(
            f,
            "this process: {} customers in {:.2} s ({:.0} customers/s)",
            self.this_process.customers, self.seconds, self.customers_per_second
        )?;
        if self.writes_refused > 0 {
            writeln!(
                f,
                "this process: {} shard write(s) refused by the fencing token (another worker \
                 had claimed them since)",
                self.writes_refused
            )?;
        }
        if !self.totals.is_empty() {
            writeln!(f, "{:<28} {:>18}", "line code (payer)", "amount (CNY)")?;
            for (k, v) in &self.totals {
                writeln!(f, "{:<28} {:>18}", terminal_safe(k, 28), v)?;
            }
            for (p, v) in &self.by_payer {
                writeln!(f, "{:<28} {:>18}", format!("total paid by {p}"), v)?;
            }
        }
        for g in &self.parked_by {
            let who = if g.plugin.is_empty() {
                "no plugin (the input)".to_string()
            } else {
                format!(
                    "{} {}",
                    terminal_safe(&g.plugin, 64),
                    terminal_safe(&g.plugin_version, 64)
                )
            };
            let what = match g.kind.as_str() {
                "skipped" => {
                    "cut off: retrying its failed batches spent its time budget".to_string()
                }
                k => terminal_safe(k, 32),
            };
            writeln!(
                f,
                "parked by {who}: {} customer(s), {what}; a re-run of the date after the fix \
                 bills them",
                g.count
            )?;
        }
        for p in self.parked.iter().take(10) {
            writeln!(
                f,
                "parked {}: {}",
                terminal_safe(&p.customer_id, 64),
                terminal_safe(&p.message, 300)
            )?;
        }
        if self.counts.parked as usize > self.parked.len().min(10) {
            writeln!(
                f,
                "… {} parked in all (the run's report lists the first {REPORT_PARKED})",
                self.counts.parked
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "note: {w}")?;
        }
        Ok(())
    }
}

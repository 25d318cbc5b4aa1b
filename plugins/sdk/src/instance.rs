//! The state behind [`export!`](crate::export): one configured plugin per component instance.

use std::sync::OnceLock;

use crate::bindings::heatbill::rules::types::{BatchOutput, DayBatch};
use crate::params::{check_line_specs, parse, truncate};
use crate::{Configuration, CustomerDay, DayOutput, LineSpec, Plugin, PluginInfo, RuleError};

/// A component instance's plugin: unconfigured until `configure`, then configured for good.
///
/// [`export!`](crate::export) keeps one in a `static`. It is public (and usable natively) so the
/// export wiring is tested like any other code: `Instance::<P>::new()` behaves exactly as the
/// component does.
pub struct Instance<P: Plugin> {
    plugin: OnceLock<P>,
}

impl<P: Plugin> Default for Instance<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> Instance<P> {
    /// An unconfigured instance.
    pub const fn new() -> Self {
        Instance {
            plugin: OnceLock::new(),
        }
    }

    /// `describe`: the plugin's [`Plugin::describe`].
    pub fn describe(&self) -> PluginInfo {
        P::describe()
    }

    /// `configure`: parses the JSON parameters ([`crate::params::parse`]), configures the
    /// plugin, checks the line specs against the contract's limits, and keeps the plugin.
    /// A second call fails (the host never makes one; a configuration is for the instance's
    /// life).
    pub fn configure(&self, params: &str) -> Result<Configuration, RuleError> {
        if self.plugin.get().is_some() {
            return Err(RuleError::BadParams(
                "this instance is already configured: instantiate the plugin again to configure it differently".into(),
            ));
        }
        let (plugin, specs) = configure::<P>(params)?;
        // Single-threaded in the component; natively a lost race is reported like a 2nd call.
        let applies_to = plugin.applies_to();
        self.plugin
            .set(plugin)
            .map_err(|_| RuleError::BadParams("this instance is already configured".into()))?;
        Ok(Configuration {
            lines: specs,
            applies_to,
        })
    }

    /// `evaluate`: one customer-day. Before `configure` it is a [`RuleError::Unsupported`]
    /// saying so; an error message is cut to the contract's 1,000 bytes.
    pub fn evaluate_one(&self, day: &CustomerDay) -> Result<DayOutput, RuleError> {
        let mut out = self.evaluate(std::slice::from_ref(day));
        out.pop().expect("one result per day")
    }

    /// `evaluate-batch`: reads the columns row by row into one reused [`CustomerDay`]
    /// ([`crate::batch::Decoder`]), evaluates each row as it is read, and writes each result
    /// straight into the output columns ([`crate::batch::Encoder`]): no vector of rows and no
    /// allocation per row on the way in. A batch that cannot be read (a host bug) fails every
    /// row with a [`RuleError::InvalidInput`] that says why.
    pub fn evaluate_batch(&self, batch: &DayBatch) -> BatchOutput {
        let n = batch.len as usize;
        let mut out = crate::batch::Encoder::new(n);
        let Some(plugin) = self.plugin.get() else {
            for _ in 0..n {
                out.push(Err(not_configured()));
            }
            return out.finish();
        };
        let mut rows = match crate::batch::Decoder::new(batch) {
            Ok(rows) => rows,
            Err(e) => {
                for _ in 0..n {
                    out.push(Err(RuleError::InvalidInput(e.0.clone())));
                }
                return out.finish();
            }
        };
        let mut day = crate::batch::blank_day();
        while rows.next_into(&mut day).is_some() {
            out.push(plugin.evaluate(&day).map_err(limit_message));
        }
        out.finish()
    }

    /// One result per day, in order. Before `configure`, every day gets a
    /// [`RuleError::Unsupported`] saying so; error messages are cut to the contract's 1,000
    /// bytes.
    pub fn evaluate(&self, days: &[CustomerDay]) -> Vec<Result<DayOutput, RuleError>> {
        let Some(plugin) = self.plugin.get() else {
            return vec![Err(not_configured()); days.len()];
        };
        days.iter()
            .map(|day| plugin.evaluate(day).map_err(limit_message))
            .collect()
    }

    /// The configured plugin, if `configure` succeeded.
    pub fn get(&self) -> Option<&P> {
        self.plugin.get()
    }
}

/// Parses the parameters and configures a plugin (shared by the component and the native
/// runner, so both refuse the same parameters with the same messages).
pub(crate) fn configure<P: Plugin>(params: &str) -> Result<(P, Vec<LineSpec>), RuleError> {
    let parsed: P::Params = parse(params)?;
    let (plugin, specs) = P::configure(parsed).map_err(cut)?;
    check_line_specs(&specs)?;
    Ok((plugin, specs))
}

fn not_configured() -> RuleError {
    RuleError::Unsupported(
        "the plugin is not configured: the host must call `configure` before `evaluate`".into(),
    )
}

/// Cuts a rule error's message to the contract's 1,000 bytes.
pub(crate) fn limit_message(e: RuleError) -> RuleError {
    if e.message().len() > crate::params::MAX_MESSAGE_BYTES {
        cut(e)
    } else {
        e
    }
}

fn cut(e: RuleError) -> RuleError {
    match e {
        RuleError::BadParams(m) => RuleError::BadParams(truncate(m)),
        RuleError::MissingInput(m) => RuleError::MissingInput(truncate(m)),
        RuleError::InvalidInput(m) => RuleError::InvalidInput(truncate(m)),
        RuleError::Unsupported(m) => RuleError::Unsupported(truncate(m)),
    }
}

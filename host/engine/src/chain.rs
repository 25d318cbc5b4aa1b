//! Rule chains and their schedule of effective dates.
//!
//! A company's chain is an ordered list of (plugin, parameters). Parameters are company data:
//! they change on effective dates while the plugins stay the same, so a company has a
//! [`Schedule`] of chain versions, and a bill date uses the version in force that day.
//!
//! Parameters are checked here, on the host, against the JSON Schema each plugin gives in
//! `describe()`, before any plugin runs: an unknown key, a missing required key, a value of the
//! wrong type or format, at any depth. That check gives the integrator an error that names company, plugin, version and
//! key, at the moment the chain is saved, not in the middle of a nightly run. The plugin's own
//! `configure` then checks what only it can (a ratio above 1, an end date before a start).

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::Value;

use crate::error::ChainError;
use crate::plugin::LoadedPlugin;

/// One entry of a chain: a plugin and its parameters.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    plugin: Arc<LoadedPlugin>,
    params: Value,
    params_json: String,
}

impl ChainEntry {
    /// An entry: `plugin` with `params` (a JSON object; `null` is taken as `{}`). Checked when
    /// the chain is built ([`Chain::new`]).
    pub fn new(plugin: Arc<LoadedPlugin>, params: Value) -> ChainEntry {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        let params_json = params.to_string();
        ChainEntry {
            plugin,
            params,
            params_json,
        }
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }
    /// The parameters as given (an object; `null` was taken as `{}`).
    pub fn params(&self) -> &Value {
        &self.params
    }
    /// The parameters as the JSON text `configure` receives.
    pub fn params_json(&self) -> &str {
        &self.params_json
    }
}

/// A company's rule chain: plugins in order, each with checked parameters.
#[derive(Debug, Clone)]
pub struct Chain {
    company: String,
    entries: Vec<ChainEntry>,
}

impl From<(Arc<LoadedPlugin>, Value)> for ChainEntry {
    fn from((plugin, params): (Arc<LoadedPlugin>, Value)) -> Self {
        ChainEntry::new(plugin, params)
    }
}

impl Chain {
    /// Builds a chain, checking each entry's parameters against its plugin's declared
    /// parameters. Entries are [`ChainEntry`]s or `(Arc<LoadedPlugin>, serde_json::Value)` pairs.
    pub fn new<I>(company: impl Into<String>, entries: I) -> Result<Chain, ChainError>
    where
        I: IntoIterator,
        I::Item: Into<ChainEntry>,
    {
        let company = company.into();
        let mut out = Vec::new();
        for entry in entries {
            let entry: ChainEntry = entry.into();
            let (plugin, params, params_json) = (&entry.plugin, &entry.params, &entry.params_json);
            // The size first: validating costs in proportion to it.
            if params_json.len() > plugin.max_params_bytes {
                return Err(ChainError::Params {
                    company,
                    plugin: plugin.name().to_string(),
                    version: plugin.version().to_string(),
                    key: None,
                    problem: format!(
                        "the parameters are {} bytes of JSON; the limit is {} \
                         (limits.max_params_bytes)",
                        params_json.len(),
                        plugin.max_params_bytes
                    ),
                });
            }
            check_params(&company, plugin, params)?;
            out.push(entry);
        }
        if out.is_empty() {
            return Err(ChainError::Empty { company });
        }
        Ok(Chain {
            company,
            entries: out,
        })
    }

    /// The company the chain belongs to.
    pub fn company(&self) -> &str {
        &self.company
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[ChainEntry] {
        &self.entries
    }
}

fn check_params(company: &str, plugin: &LoadedPlugin, params: &Value) -> Result<(), ChainError> {
    // The first problem is the error; up to three are shown, so that an integrator fixing a
    // chain by hand sees more than one at a time.
    let problems = plugin.param_problems(params, 3);
    let Some(first) = problems.first() else {
        return Ok(());
    };
    let mut problem = first.problem.clone();
    for more in &problems[1..] {
        problem.push_str("; also ");
        if let Some(k) = &more.key {
            problem.push_str(&format!("`{k}`: "));
        }
        problem.push_str(&more.problem);
    }
    Err(ChainError::Params {
        company: company.to_string(),
        plugin: plugin.name().to_string(),
        version: plugin.version().to_string(),
        key: first.key.clone(),
        problem,
    })
}

/// A company's chain versions by effective date: each is in force from its date until the next
/// one's.
#[derive(Debug, Clone)]
pub struct Schedule {
    company: String,
    versions: Vec<(NaiveDate, Arc<Chain>)>,
}

impl Schedule {
    /// Builds a schedule from (effective date, chain) pairs in any order. All chains must be of
    /// one company, and no two may share an effective date.
    pub fn new(
        versions: impl IntoIterator<Item = (NaiveDate, Arc<Chain>)>,
    ) -> Result<Schedule, ChainError> {
        let mut versions: Vec<_> = versions.into_iter().collect();
        versions.sort_by_key(|(d, _)| *d);
        let Some((_, first)) = versions.first() else {
            return Err(ChainError::Schedule {
                company: String::new(),
                problem: "the schedule has no chain versions".into(),
            });
        };
        let company = first.company().to_string();
        for pair in versions.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(ChainError::Schedule {
                    company,
                    problem: format!("two chain versions take effect on {}", pair[0].0),
                });
            }
        }
        if let Some((_, other)) = versions.iter().find(|(_, c)| c.company() != company) {
            return Err(ChainError::Schedule {
                company,
                problem: format!(
                    "a chain version belongs to company `{}`; a schedule is one company's",
                    other.company()
                ),
            });
        }
        Ok(Schedule { company, versions })
    }

    /// The company.
    pub fn company(&self) -> &str {
        &self.company
    }

    /// The versions, by effective date ascending.
    pub fn versions(&self) -> &[(NaiveDate, Arc<Chain>)] {
        &self.versions
    }

    /// The index of the version in force on `date`, if any (none before the first date).
    pub fn version_for(&self, date: NaiveDate) -> Option<usize> {
        self.versions
            .partition_point(|(d, _)| *d <= date)
            .checked_sub(1)
    }

    /// The chain in force on `date`, if any.
    pub fn chain_for(&self, date: NaiveDate) -> Option<&Arc<Chain>> {
        self.version_for(date).map(|i| &self.versions[i].1)
    }
}

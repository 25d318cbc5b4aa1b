//! Rule chains and their schedule of effective dates.
//!
//! A company's chain is an ordered list of (plugin, parameters). Parameters are company data:
//! they change on effective dates while the plugins stay the same, so a company has a
//! [`Schedule`] of chain versions, and a bill date uses the version in force that day.
//!
//! Parameters are checked here, on the host, against the parameters each plugin declares in
//! `describe()`, before any plugin runs: an unknown key, a missing required key, a value of the
//! wrong type. That check gives the integrator an error that names company, plugin, version and
//! key, at the moment the chain is saved, not in the middle of a nightly run. The plugin's own
//! `configure` then checks what only it can (a ratio above 1, an end date before a start).

use std::sync::Arc;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::error::ChainError;
use crate::model::ParamType;
use crate::plugin::Plugin;

/// One entry of a chain: a plugin and its parameters.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    plugin: Arc<Plugin>,
    params: Value,
    params_json: String,
}

impl ChainEntry {
    /// An entry: `plugin` with `params` (a JSON object; `null` is taken as `{}`). Checked when
    /// the chain is built ([`Chain::new`]).
    pub fn new(plugin: Arc<Plugin>, params: Value) -> ChainEntry {
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
    pub fn plugin(&self) -> &Arc<Plugin> {
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

impl From<(Arc<Plugin>, Value)> for ChainEntry {
    fn from((plugin, params): (Arc<Plugin>, Value)) -> Self {
        ChainEntry::new(plugin, params)
    }
}

impl Chain {
    /// Builds a chain, checking each entry's parameters against its plugin's declared
    /// parameters. Entries are [`ChainEntry`]s or `(Arc<Plugin>, serde_json::Value)` pairs.
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
            check_params(&company, plugin, params)?;
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

fn check_params(company: &str, plugin: &Plugin, params: &Value) -> Result<(), ChainError> {
    let err = |key: Option<&str>, problem: String| ChainError::Params {
        company: company.to_string(),
        plugin: plugin.name().to_string(),
        version: plugin.version().to_string(),
        key: key.map(str::to_string),
        problem,
    };
    let specs = &plugin.info().params;
    let Value::Object(map) = params else {
        return Err(err(
            None,
            format!(
                "the parameters must be a JSON object (of keys {}), not {}",
                names(plugin),
                json_kind(params)
            ),
        ));
    };
    for key in map.keys() {
        if !specs.iter().any(|s| &s.name == key) {
            return Err(err(
                Some(key),
                format!(
                    "unknown parameter; {} takes {}",
                    plugin.name(),
                    names(plugin)
                ),
            ));
        }
    }
    for spec in specs {
        let Some(value) = map.get(&spec.name) else {
            if spec.required {
                return Err(err(
                    Some(&spec.name),
                    format!(
                        "missing; it is required ({}: {})",
                        spec.ty, spec.description
                    ),
                ));
            }
            continue;
        };
        check_value(spec.ty, value).map_err(|p| err(Some(&spec.name), p))?;
    }
    Ok(())
}

fn check_value(ty: ParamType, v: &Value) -> Result<(), String> {
    match (ty, v) {
        (ParamType::Decimal, Value::String(s)) => Decimal::from_str_exact(s)
            .map(|_| ())
            .map_err(|_| format!("{s:?} is not an exact decimal number; write it like \"38.32\"")),
        (ParamType::Decimal, Value::Number(n)) => Err(format!(
            "expected a decimal written as a JSON string; found the number {n}: write \"{n}\" \
             in quotes (a JSON number may be read as a float, and money is never a float)"
        )),
        (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (ParamType::Boolean, Value::Bool(_)) => Ok(()),
        (ParamType::Date, Value::String(s)) => {
            if s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
                Ok(())
            } else {
                Err(format!(
                    "{s:?} is not a date; write it as \"YYYY-MM-DD\", e.g. \"2025-10-20\""
                ))
            }
        }
        (ParamType::Text, Value::String(_)) => Ok(()),
        (ParamType::Json, Value::Object(_) | Value::Array(_)) => Ok(()),
        (ty, v) => Err(format!(
            "expected {}, found {}",
            match ty {
                ParamType::Decimal => "a decimal written as a JSON string, e.g. \"38.32\"",
                ParamType::Integer => "a JSON integer, e.g. 30",
                ParamType::Boolean => "true or false",
                ParamType::Date => "a date written as a JSON string \"YYYY-MM-DD\"",
                ParamType::Text => "a JSON string",
                ParamType::Json => "a JSON object or array",
            },
            json_kind(v)
        )),
    }
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn names(plugin: &Plugin) -> String {
    let specs = &plugin.info().params;
    if specs.is_empty() {
        return "no parameters".to_string();
    }
    specs
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
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

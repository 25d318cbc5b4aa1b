//! Company files: a company, its heating seasons and its rule chain versions, in TOML, applied
//! with `heatbill company apply FILE --plugins DIR`.
//!
//! ```toml
//! slug = "harbin"                      # what operators type: heatbill run --company harbin
//! name = "Harbin Heating Co."
//! time_zone = "Asia/Harbin"
//!
//! [[season]]                           # regular heating seasons, both ends inclusive
//! start = "2025-10-20"
//! end = "2026-04-20"
//!
//! [[chain]]                            # a rule chain version and the date it takes effect
//! effective_from = "2025-10-01"
//! [[chain.entry]]
//! plugin = "season"                    # the plugin's described name
//! version = "1.0.0"                    # optional: the described version it must be
//! params = { start = "2025-10-20", end = "2026-04-20" }
//! ```
//!
//! Applying is idempotent: the same file twice changes nothing (and does not bump the company's
//! data version). Each chain version is checked before anything is stored: every plugin is
//! loaded by the production engine (world, imports, limits, `describe`) and every entry's
//! parameters are checked against what its plugin declares, so a typo fails here, naming the
//! company, plugin and key, not at night.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use chrono::NaiveDate;
use heatbill_engine::{Chain, ChainEntry, Engine, LoadedPlugin};
use serde::Deserialize;

use crate::model::*;
use crate::store::{StoreError, prelude::*};

/// A parsed company file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyFile {
    /// Short name: lowercase letters, digits and dashes.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// IANA time zone, e.g. `Asia/Harbin`.
    pub time_zone: String,
    /// Company policies (free-form table).
    #[serde(default)]
    pub policies: Option<toml::Table>,
    /// Regular heating seasons.
    #[serde(default, rename = "season")]
    pub seasons: Vec<Season>,
    /// Rule chain versions.
    #[serde(default, rename = "chain")]
    pub chains: Vec<ChainSpec>,
}

/// One chain version of a company file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The first date it bills.
    pub effective_from: NaiveDate,
    /// The entries, in order.
    #[serde(rename = "entry")]
    pub entries: Vec<EntrySpec>,
}

/// One entry of a chain version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The plugin's described name.
    pub plugin: String,
    /// When given, the plugin's described version must equal it.
    #[serde(default)]
    pub version: Option<String>,
    /// The parameters.
    #[serde(default)]
    pub params: Option<toml::Value>,
}

/// Why a company file could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum CompanyError {
    /// The file is unreadable or not a valid company file.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The largest company file read, in bytes: 1 MiB (1,048,576), as a JSON or TOML body of the
/// admin API (`api.max_body_bytes`).
pub const MAX_COMPANY_FILE_BYTES: u64 = 1 << 20;

impl CompanyFile {
    /// Reads and checks a company file: a regular file of at most [`MAX_COMPANY_FILE_BYTES`]
    /// (see [`read_regular_file`]).
    pub fn load(path: &Path) -> Result<CompanyFile, CompanyError> {
        let bytes = read_regular_file(path, MAX_COMPANY_FILE_BYTES, "a company file")
            .map_err(CompanyError::Invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            CompanyError::Invalid(format!(
                "{}: not UTF-8 text; save it as UTF-8",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|e| CompanyError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses and checks company-file text.
    pub fn parse(text: &str) -> Result<CompanyFile, String> {
        let f: CompanyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        check_slug(&f.slug)?;
        if f.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        check_time_zone(&f.time_zone)?;
        for s in &f.seasons {
            if s.end < s.start {
                return Err(format!(
                    "season {} → {}: the end is before the start",
                    s.start, s.end
                ));
            }
        }
        let mut dates: Vec<NaiveDate> = f.chains.iter().map(|c| c.effective_from).collect();
        dates.sort();
        if let Some(w) = dates.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("two chain versions take effect on {}", w[0]));
        }
        if let Some(c) = f.chains.iter().find(|c| c.entries.is_empty()) {
            return Err(format!(
                "the chain version of {} has no entries",
                c.effective_from
            ));
        }
        check_policies(&f.spec().policies, &f.seasons)?;
        Ok(f)
    }

    /// The company as the store takes it.
    pub fn spec(&self) -> CompanySpec {
        CompanySpec {
            slug: self.slug.clone(),
            name: self.name.clone(),
            time_zone: self.time_zone.clone(),
            policies: self.policies.as_ref().map_or_else(
                || serde_json::json!({}),
                |t| params_json(&toml::Value::Table(t.clone())),
            ),
            seasons: self.seasons.clone(),
        }
    }
}

/// Checks a company slug: 1–40 lowercase letters, digits and dashes, starting with a letter.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let ok = !slug.is_empty()
        && slug.len() <= 40
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "company slug {:?}: use 1–40 lowercase letters, digits and dashes, starting with a \
             letter (e.g. harbin-north)",
            crate::import::shown(slug)
        ))
    }
}

/// Checks the shape of an IANA time-zone name (`UTC`, `Asia/Harbin`, `America/Argentina/Salta`).
/// The name is not looked up in a zone database: heatbill uses it to schedule the nightly run
/// and to read local meter times, and the scheduler refuses a zone it cannot resolve.
pub fn check_time_zone(tz: &str) -> Result<(), String> {
    let ok = tz == "UTC"
        || (tz.contains('/')
            && tz.len() <= 64
            && tz.split('/').all(|p| {
                !p.is_empty()
                    && p.starts_with(|c: char| c.is_ascii_uppercase())
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            }));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "time zone {:?}: give an IANA name such as Asia/Harbin or Asia/Shanghai",
            crate::import::shown(tz)
        ))
    }
}

/// Converts a TOML parameter table to the JSON object a plugin's `configure` receives.
pub fn params_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        // TOML floats never reach a plugin as numbers: decimals are strings in the contract. The
        // host's parameter validation rejects them with a message that says so.
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(params_json).collect()),
        toml::Value::Table(t) => {
            serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), params_json(v))).collect())
        }
    }
}

/// Reads a file that must be a regular file of at most `cap` bytes (`what` names it in the
/// errors, e.g. "a component"). A symbolic link is followed, and what it names must be a regular
/// file too: a device (`/dev/zero` never ends), a FIFO (opening one waits for a writer), a
/// socket or a directory is refused by its type before anything is read; a file over `cap` is
/// refused by its size, and one that grows while it is read, after `cap + 1` bytes. The file is
/// opened without blocking and checked again once open, so a path swapped for a FIFO between the
/// check and the open cannot hang the reader either.
pub fn read_regular_file(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let not_regular = |meta: &std::fs::Metadata| {
        let ty = meta.file_type();
        let kind = if ty.is_dir() {
            "a directory"
        } else if ty.is_symlink() {
            "a symbolic link"
        } else {
            "a device, FIFO or socket"
        };
        format!("{shown} is {kind}, not a regular file: give {what} as a file")
    };
    let too_large = |len: u64| {
        format!("{shown} is {len} bytes; {what} is at most {cap} bytes, so it was not read")
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > cap {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!(
            "{shown} grew past {cap} bytes while it was read; {what} is at most {cap} bytes"
        ));
    }
    Ok(bytes)
}

/// The largest component `engine` accepts under any of its limits profiles: a file larger than
/// this is not a component it could load, so it is not read.
pub fn max_component_bytes(engine: &Engine) -> u64 {
    let c = engine.config();
    c.profiles
        .values()
        .map(|p| p.max_component_bytes)
        .fold(c.limits.max_component_bytes, usize::max) as u64
}

/// The plugins in a directory of components, by described name, loaded by the engine.
#[derive(Debug, Default)]
pub struct Components {
    by_name: BTreeMap<String, (Arc<LoadedPlugin>, Vec<u8>)>,
    rejected: Vec<(PathBuf, String)>,
}

impl Components {
    /// Loads the given component files. Each must be a regular file no larger than the
    /// largest component the engine accepts ([`max_component_bytes`]); anything else (a link to
    /// a device, a FIFO) is refused before it is read (see [`read_regular_file`]).
    pub fn load(engine: &Engine, files: &[PathBuf]) -> Result<Components, CompanyError> {
        let mut out = Components::default();
        let cap = max_component_bytes(engine);
        for f in files {
            let bytes = read_regular_file(f, cap, "a component").map_err(CompanyError::Invalid)?;
            match engine.load(&bytes) {
                Ok(p) => {
                    let name = p.info().name.clone();
                    if let Some((other, _)) = out.by_name.get(&name)
                        && other.digest() != p.digest()
                    {
                        return Err(CompanyError::Invalid(format!(
                            "two different components describe themselves as {name} (one is {}): \
                             keep one",
                            f.display()
                        )));
                    }
                    out.by_name.insert(name, (p, bytes));
                }
                Err(e) => out.rejected.push((f.clone(), e.to_string())),
            }
        }
        Ok(out)
    }

    /// The plugin a chain entry names.
    pub fn get(&self, name: &str) -> Result<&(Arc<LoadedPlugin>, Vec<u8>), CompanyError> {
        self.by_name.get(name).ok_or_else(|| {
            let mut msg = format!(
                "no plugin named {:?} among the components; available: {}",
                crate::import::shown(name),
                self.by_name.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            for (f, why) in &self.rejected {
                msg.push_str(&format!("\n  not loaded: {}: {why}", f.display()));
            }
            CompanyError::Invalid(msg)
        })
    }
}

/// The record a loaded plugin is stored as.
pub fn plugin_record(plugin: &LoadedPlugin, bytes: &[u8]) -> PluginRecord {
    let info = plugin.info();
    PluginRecord {
        digest: plugin.digest().to_string(),
        name: info.name.clone(),
        version: info.version.clone(),
        kind: info.kind.to_string(),
        contract_version: plugin.contract().to_string(),
        info: serde_json::to_value(info).expect("plugin info serializes"),
        component: bytes.to_vec(),
    }
}

/// What applying a company file did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The company as stored.
    pub company: Company,
    /// Its chain versions (effective date, id, digest).
    pub chains: Vec<ChainVersion>,
}

/// Applies a company file: checks every chain version with the engine, then stores the
/// company, the plugins and the chain versions.
pub async fn apply(
    store: &dyn Store,
    file: &CompanyFile,
    components: &Components,
) -> Result<Applied, CompanyError> {
    // Check everything before storing anything.
    let mut versions = Vec::new();
    for c in &file.chains {
        let mut defs = Vec::new();
        let mut entries = Vec::new();
        for (i, e) in c.entries.iter().enumerate() {
            let (plugin, bytes) = components.get(&e.plugin)?;
            if let Some(v) = &e.version
                && *v != plugin.info().version
            {
                return Err(CompanyError::Invalid(format!(
                    "chain of {}: entry {} asks for {} {v}, but the component is version {}",
                    c.effective_from,
                    i + 1,
                    e.plugin,
                    plugin.info().version
                )));
            }
            let params = e.params.as_ref().map_or(serde_json::json!({}), params_json);
            entries.push(ChainEntry::new(plugin.clone(), params.clone()));
            let record = plugin_record(plugin, bytes);
            defs.push((
                ChainEntryDef {
                    plugin: record.digest.clone(),
                    name: record.name.clone(),
                    version: record.version.clone(),
                    params,
                },
                record,
            ));
        }
        Chain::new(file.slug.clone(), entries)
            .map_err(|e| CompanyError::Invalid(format!("chain of {}: {e}", c.effective_from)))?;
        versions.push((c.effective_from, defs));
    }
    let company = store.put_company(&file.spec()).await?;
    for (_, defs) in &versions {
        for (_, record) in defs {
            store.put_plugin(record).await?;
            store.add_company_plugin(company.id, record).await?;
        }
    }
    for (date, defs) in &versions {
        let entries: Vec<ChainEntryDef> = defs.iter().map(|(d, _)| d.clone()).collect();
        store.put_chain_version(company.id, *date, &entries).await?;
    }
    let company = store.company(&company.slug).await?;
    let chains = store.chain_versions(company.id).await?;
    Ok(Applied { company, chains })
}

/// Checks a company's policies, every one the runtime reads (allocation, the bank account rule,
/// billing, fee control, event targets, invoicing), against its seasons: the company file and
/// the admin API refuse a company whose policies would fail a run or a payment, with what to
/// fix.
pub fn check_policies(policies: &serde_json::Value, seasons: &[Season]) -> Result<(), String> {
    crate::ledger::Allocation::of(policies)?;
    crate::store::statements::account_rule(policies)?;
    crate::events::FeeControl::of(policies)?;
    crate::events::targets_of(policies)?;
    crate::invoices::InvoicePolicy::of(policies)?;
    if let Some(b) = crate::notices::BillingPolicy::of(policies)? {
        b.check(seasons)?;
    }
    Ok(())
}

//! A loaded plugin: its compiled code ready to instantiate, and what it said about itself.

use std::fmt;

use crate::bindings::{Contract, wit};
use crate::config::Limits;
use crate::model::{PluginInfo, PluginKind};
use crate::params::{ParamProblem, ParamsSchema};
use crate::sandbox::StoreState;
use crate::text::shorten;
use wasmtime::component::{ComponentExportIndex, InstancePre};

/// A plugin that passed every load check: compiled, linked against the sandbox, described.
///
/// Shared as `Arc<LoadedPlugin>` by every chain that uses it. Instantiating it is cheap (an
/// `InstancePre` over the pooling allocator); each [`Evaluator`](crate::Evaluator) does that
/// for itself. Built by the engine's load (`Engine::load`), the one place a plugin is made.
/// Named `LoadedPlugin` because the SDK's `Plugin` is the trait a plugin's author implements;
/// this is the host's side, a component loaded and checked.
pub struct LoadedPlugin {
    pub(crate) info: PluginInfo,
    pub(crate) digest: String,
    pub(crate) size: usize,
    pub(crate) pre: InstancePre<StoreState>,
    /// The contract version it implements (the version of the `rules` interface it exports).
    pub(crate) contract: Contract,
    /// `evaluate-batch`, called through [`crate::lift`]'s bounded result type.
    pub(crate) evaluate_batch: ComponentExportIndex,
    pub(crate) max_params_bytes: usize,
    /// The parameter schema of `info`, compiled.
    pub(crate) params_schema: ParamsSchema,
    /// The limits of its profile that apply while it runs.
    pub(crate) budget: Budget,
}

/// The limits of a plugin's profile that apply while it runs ([`crate::Profile`]): its memory,
/// the fixed part of its deadlines, its `configure` time. The rest are the engine's.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) profile: String,
    pub(crate) max_memory_bytes: usize,
    pub(crate) deadline_base_ms: u64,
    pub(crate) max_configure_ms: u64,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("kind", &self.info.kind)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// What is wrong with a parameter object for this plugin, by its schema: at most `max`
    /// problems, none when it is valid.
    pub(crate) fn param_problems(
        &self,
        params: &serde_json::Value,
        max: usize,
    ) -> Vec<ParamProblem> {
        self.params_schema.problems(params, &self.info.params, max)
    }

    /// The limits profile it was loaded under (`standard` unless granted another).
    pub fn profile(&self) -> &str {
        &self.budget.profile
    }

    /// The contract version the plugin implements, e.g. 0.2.0.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// What `describe()` returned (validated).
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    /// The plugin's name, e.g. `area-tariff`.
    pub fn name(&self) -> &str {
        &self.info.name
    }
    /// The plugin's version, e.g. `1.0.0`.
    pub fn version(&self) -> &str {
        &self.info.version
    }
    /// The plugin's kind.
    pub fn kind(&self) -> PluginKind {
        self.info.kind
    }
    /// The SHA-256 of the component, hex: what the compile cache is keyed by and what an
    /// upload records.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// What `describe()` returned, checked against the limits (the error says what to fix), with
/// its parameter schema compiled.
pub(crate) fn checked_info(
    i: wit::PluginInfo,
    l: &Limits,
) -> Result<(PluginInfo, ParamsSchema), String> {
    let mut info = PluginInfo {
        name: i.name,
        version: i.version,
        kind: match i.kind {
            wit::PluginKind::Season => PluginKind::Season,
            wit::PluginKind::Tariff => PluginKind::Tariff,
            wit::PluginKind::Subsidy => PluginKind::Subsidy,
            wit::PluginKind::Fee => PluginKind::Fee,
        },
        description: i.description,
        params: Vec::new(),
        params_schema: serde_json::Value::Null,
    };
    validate_info(&info, l)?;
    let (schema, params, compiled) = crate::params::load(&i.params_schema, l)?;
    info.params = params;
    info.params_schema = schema;
    Ok((info, compiled))
}

/// Checks the name, version and description `describe()` returned; the error says what to fix.
fn validate_info(info: &PluginInfo, l: &Limits) -> Result<(), String> {
    check_name("name", &info.name, l.max_name_bytes)?;
    if info.version.len() > l.max_name_bytes || !is_semver(&info.version) {
        return Err(format!(
            "version {:?} is not a semantic version such as \"1.0.0\" (MAJOR.MINOR.PATCH, \
             optionally -pre and +build, at most {} bytes)",
            shorten(&info.version),
            l.max_name_bytes
        ));
    }
    if info.description.len() > l.max_describe_bytes {
        return Err(format!(
            "the description is {} bytes; the limit is {} (limits.max_describe_bytes)",
            info.description.len(),
            l.max_describe_bytes
        ));
    }
    Ok(())
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?} is not a plugin name: use 1 to {max} lowercase letters, digits, `-` \
             and `_`, starting with a letter or digit, e.g. \"area-tariff\"",
            shorten(name)
        ))
    }
}

/// MAJOR.MINOR.PATCH with numeric parts, optionally followed by `-pre` and/or `+build`.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let rest = &v[core.len()..];
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() == 1 || !p.starts_with('0'))
    };
    let suffix_ok = rest.is_empty()
        || (rest.len() > 1
            && rest[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+'));
    parts.len() == 3 && parts.iter().all(numeric) && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver() {
        for ok in ["1.0.0", "0.1.12", "2.3.4-rc.1", "1.0.0+build.5", "10.20.30"] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "", "1", "1.0", "1.0.0.0", "01.0.0", "a.b.c", "1.0.0-", "v1.0.0",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("name", "area-tariff", 64).is_ok());
        assert!(check_name("name", "", 64).is_err());
        assert!(check_name("name", "Area Tariff", 64).is_err());
        assert!(check_name("name", "-x", 64).is_err());
    }
}

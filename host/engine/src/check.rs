//! `heatbill plugin check`'s report: what a binary is, what it imports, what it says about
//! itself, and whether it loads, for a person (`Display`) and for tools (`Serialize`).

use std::fmt;

use serde::Serialize;

use sha2::{Digest as _, Sha256};

use crate::Contract;
use crate::bindings::is_granted;
use crate::compile::check_structure;
use crate::config::EngineConfig;
use crate::engine::{Engine, RULES_WORLD};
use crate::error::LoadError;
use crate::format::{BinaryFormat, check_format, check_size, component_digest};
use crate::model::{ParamSpec, PluginInfo};

/// One import of a checked component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCheck {
    /// The import's name, e.g. `wasi:cli/stdout@0.2.6`.
    pub name: String,
    /// Whether the sandbox grants it.
    pub granted: bool,
    /// Whether it is linked to functions that trap, by the profile's `trapped_imports` (then
    /// `granted` is true too: it links, and grants nothing).
    pub trapped: bool,
}

/// What [`Engine::check`] found, for `heatbill plugin check`. `Display` prints it for humans;
/// `Serialize` gives it to machines (the error as its message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The binary's size in bytes.
    pub size: usize,
    /// The size limit.
    pub max_size: usize,
    /// SHA-256 of the binary, hex.
    pub digest: String,
    /// What the header says the binary is.
    pub format: BinaryFormat,
    /// The component's imports, each granted or denied (empty if it could not be compiled).
    pub imports: Vec<ImportCheck>,
    /// The component's exports.
    pub exports: Vec<String>,
    /// The contract world it implements, if it exports the contract's `rules` interface (its
    /// imports are judged separately, in `imports` and `error`).
    pub world: Option<String>,
    /// What `describe()` returned, if it loads.
    pub info: Option<PluginInfo>,
    /// Why it would be refused, if it would.
    #[serde(serialize_with = "serialize_error")]
    pub error: Option<LoadError>,
    /// Its shape, as the structural check counted it (when it passed): what an operator sizes
    /// the pool and a profile by.
    pub structure: Option<crate::Structure>,
    /// The limits profile it was checked under (`standard` unless granted or asked for).
    pub profile: String,
    /// When it is refused under `profile`: the first profile, smallest first, under which it
    /// loads (`Engine::check_needs`); `None` when it loads, or loads under none.
    pub needs: Option<String>,
    /// The larger profiles tried after the refusal under `profile`, in order (the last is
    /// `needs` when one took it); empty when it loads, or when the refusal is not one a profile
    /// lifts.
    pub tried: Vec<String>,
}

fn serialize_error<S: serde::Serializer>(e: &Option<LoadError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl CheckReport {
    /// Whether the component would load.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for CheckReport {
    /// Every text the component wrote (its import names, what `describe` said, an error that
    /// quotes it) is escaped for the terminal (`crate::text`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::safe;
        let mark = |ok: bool| if ok { "ok " } else { "ERR" };
        writeln!(
            f,
            "{} size      {} bytes (limit {})",
            mark(self.size <= self.max_size),
            self.size,
            self.max_size
        )?;
        writeln!(f, "    sha256    {}", self.digest)?;
        writeln!(f, "    profile   {}", safe(&self.profile))?;
        if let Some(s) = &self.structure {
            writeln!(
                f,
                "ok  shape     {} core instances, {} modules, {} functions, {} memories, {} tables",
                s.core_instances, s.modules, s.functions, s.memories, s.tables
            )?;
        }
        writeln!(
            f,
            "{} format    {}",
            mark(self.format == BinaryFormat::Component),
            self.format
        )?;
        if !self.exports.is_empty() {
            writeln!(f, "    exports   {}", self.exports.join(", "))?;
        }
        match &self.world {
            Some(w) => writeln!(f, "ok  world     {w}")?,
            None if self.format == BinaryFormat::Component && !self.exports.is_empty() => {
                writeln!(f, "ERR world     not {RULES_WORLD}")?
            }
            None => {}
        }
        if !self.imports.is_empty() {
            writeln!(f, "    imports")?;
            for i in &self.imports {
                writeln!(
                    f,
                    "{}   {} ({})",
                    mark(i.granted),
                    safe(&i.name),
                    if !i.granted {
                        "NOT GRANTED"
                    } else if i.trapped {
                        "linked to traps by the profile: any call fails"
                    } else if i.name.starts_with("heatbill:rules/") {
                        "the contract's types"
                    } else {
                        "granted, with nothing behind it"
                    }
                )?;
            }
        }
        if let Some(info) = &self.info {
            writeln!(
                f,
                "ok  plugin    {} {} ({})",
                safe(&info.name),
                safe(&info.version),
                info.kind
            )?;
            writeln!(f, "    about     {}", safe(&info.description))?;
            for ParamSpec {
                name,
                ty,
                required,
                description,
            } in &info.params
            {
                writeln!(
                    f,
                    "    param     {}: {ty}{} — {}",
                    safe(name),
                    if *required { ", required" } else { "" },
                    safe(description)
                )?;
            }
        }
        match &self.error {
            None => writeln!(f, "ok  the plugin loads (profile {})", safe(&self.profile))?,
            Some(e) => writeln!(f, "ERR {}", safe(&e.to_string()))?,
        }
        if self.needs.is_none() && !self.tried.is_empty() {
            let tried: Vec<String> = self
                .tried
                .iter()
                .map(|p| format!("`{}`", safe(p)))
                .collect();
            writeln!(
                f,
                "    tried     the profile{} {}: refused under {} too",
                if tried.len() == 1 { "" } else { "s" },
                tried.join(", "),
                if tried.len() == 1 { "it" } else { "each" }
            )?;
        }
        if matches!(self.error, Some(LoadError::CompileLimit { .. })) && self.tried.is_empty() {
            writeln!(
                f,
                "    no larger profile is tried after a compile that runs out of time or memory: \
                 an honest component within the size cap compiles in seconds, and the admin API \
                 refuses this one the same way"
            )?;
        }
        if let Some(needed) = &self.needs {
            writeln!(
                f,
                "    needs     the profile `{}`: it loads under it. In production an operator \
                 grants it in the engine settings, `[grants]` \"{}\" = \"{}\"; locally, pass \
                 --profile {}",
                safe(needed),
                self.digest,
                safe(needed),
                safe(needed)
            )?;
        }
        Ok(())
    }
}

/// `heatbill plugin check`: the engine's load, step by step, reporting instead of failing.
impl Engine {
    /// Checks a component for `heatbill plugin check` under the profile granted to it: never
    /// fails, reports everything it finds.
    pub fn check(&self, bytes: &[u8]) -> CheckReport {
        self.check_as(bytes, &self.profile_of(bytes))
    }

    /// [`check_as`](Self::check_as), and when the component is refused, the profiles larger
    /// than `profile` tried in turn (smallest first) until one takes it: the report's `needs`.
    pub fn check_needs(&self, bytes: &[u8], profile: &str) -> CheckReport {
        self.check_needs_with(bytes, profile, |_, _| {})
    }

    /// [`check_needs`](Self::check_needs), calling `trying(profile, refusal)` before each larger
    /// profile is tried, so that a caller can say which one it is trying and why (a profile's
    /// compile may take its larger compile limits: minutes, not seconds).
    ///
    /// Only a refusal a profile's figures lift is worth a try under a larger one: the
    /// component's size, its shape, an import the profile links. Not a compile that ran out of
    /// time or memory ([`LoadError::CompileLimit`]): an honest component within a profile's
    /// size cap compiles in seconds (about 1.5 MB/s), so that is a compile bomb, and a larger
    /// profile's compile limits would only let it cost more. Such a component is refused under
    /// `profile` within that profile's compile limits, exactly as the admin API refuses its
    /// upload.
    pub fn check_needs_with(
        &self,
        bytes: &[u8],
        profile: &str,
        mut trying: impl FnMut(&str, &LoadError),
    ) -> CheckReport {
        let mut report = self.check_as(bytes, profile);
        let Some(refusal) = report.error.clone() else {
            return report;
        };
        if !matches!(
            refusal,
            LoadError::TooLarge { .. }
                | LoadError::OverLimit { .. }
                | LoadError::ImportNotGranted { .. }
        ) {
            return report;
        }
        let names = self.config().profile_names();
        let after = names.iter().position(|n| n == profile).map_or(0, |i| i + 1);
        for name in &names[after..] {
            trying(name, &refusal);
            report.tried.push(name.clone());
            if self.check_as(bytes, name).ok() {
                report.needs = Some(name.clone());
                break;
            }
        }
        report
    }

    /// Checks a component under the named profile: never fails, reports everything it finds.
    pub fn check_as(&self, bytes: &[u8], profile: &str) -> CheckReport {
        let mut report = self.check_report(bytes, profile);
        match self.effective(profile) {
            Ok(eff) => self.fill_check(&mut report, bytes, profile, &eff),
            Err(e) => report.error = Some(e),
        }
        report
    }

    fn check_report(&self, bytes: &[u8], profile: &str) -> CheckReport {
        CheckReport {
            size: bytes.len(),
            max_size: self
                .config()
                .effective(profile)
                .map_or(self.limits().max_component_bytes, |c| {
                    c.limits.max_component_bytes
                }),
            digest: component_digest(bytes),
            format: BinaryFormat::of(bytes),
            imports: Vec::new(),
            exports: Vec::new(),
            world: None,
            info: None,
            error: None,
            profile: profile.to_string(),
            needs: None,
            tried: Vec::new(),
            structure: None,
        }
    }

    /// The rest of [`check_as`](Self::check_as): everything after the report's header.
    fn fill_check(
        &self,
        report: &mut CheckReport,
        bytes: &[u8],
        profile: &str,
        eff: &EngineConfig,
    ) {
        if let Err(e) = check_size(bytes.len(), report.max_size).and_then(|()| check_format(bytes))
        {
            report.error = Some(e);
            return;
        }
        report.structure = check_structure(bytes, &eff.limits, &eff.pool).ok();
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let fetched = match self.component(bytes, &digest, eff) {
            Ok(f) => f,
            Err(e) => {
                report.error = Some(e);
                return;
            }
        };
        let component = fetched.component.clone();
        let ty = component.component_type();
        let engine = self.wasmtime();
        report.imports = ty
            .imports(engine)
            .map(|(name, _)| {
                let trapped = !is_granted(name) && self.traps(profile, name);
                ImportCheck {
                    name: name.to_string(),
                    granted: is_granted(name) || trapped,
                    trapped,
                }
            })
            .collect();
        report.exports = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        report.world = report
            .exports
            .iter()
            .find_map(|n| Contract::of_export(n))
            .map(|c| format!("heatbill:rules/rules-plugin@{c}"));
        match self.prepare(component, &digest, bytes.len(), profile, eff) {
            Ok(plugin) => {
                // Kept only once it loaded, as `load` keeps it.
                self.keep(&digest, fetched);
                report.info = Some(plugin.info().clone());
            }
            Err(e) => report.error = Some(e),
        }
    }
}

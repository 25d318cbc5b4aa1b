//! The plugins a harness command works with: the components its arguments name (files,
//! directories, plugin crates in any of the three languages), loaded by the production engine
//! into a [`Catalog`] by described name, with the reference plugins added for the names no
//! given component answers; and the case files its arguments name. `test`, `bench` and the
//! admin API's case-file uploads share it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use heatbill_engine::text::safe;
use heatbill_engine::{Engine, LoadedPlugin};

use crate::scaffold;

/// The reference plugins (their component files' stems), which `plugin test` and `plugin bench`
/// find by default for the chain entries no given component answers.
pub const REFERENCE_PLUGINS: [&str; 7] = [
    "season",
    "area_tariff",
    "metered_tariff",
    "suspension_fee",
    "low_income_subsidy",
    "temperature_refund",
    "late_fee",
];

/// Where the reference plugins are, the first of:
/// - `HEATBILL_REFERENCE_PLUGINS` (empty: none);
/// - beside the binary, as `./dev dist` lays a release out: `<bin>/../share/heatbill/
///   reference-plugins`, or `reference-plugins` in the binary's own directory, so a binary
///   copied to another machine with its data directory finds them;
/// - the build output of the checkout this binary was built from, when it is there.
pub fn reference_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HEATBILL_REFERENCE_PLUGINS") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .into_iter()
        .flat_map(|bin| {
            [
                bin.join("../share/heatbill/reference-plugins"),
                bin.join("reference-plugins"),
            ]
        });
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release");
    beside.chain(std::iter::once(checkout)).find(|d| d.is_dir())
}

/// The catalog of a harness command: its components, then the reference plugins (unless
/// `--no-reference`), saying on stderr which reference plugins it added.
pub(crate) fn harness_catalog(
    engine: &Engine,
    profile: Option<&str>,
    first: &Path,
    more: &[PathBuf],
    no_reference: bool,
    quiet: bool,
) -> Result<Catalog> {
    let mut args = vec![first.to_path_buf()];
    args.extend(more.iter().cloned());
    let reference = if no_reference { None } else { reference_dir() };
    let (catalog, added) =
        Catalog::load_with_reference(engine, &args, reference.as_deref(), profile)?;
    if !added.is_empty() && !quiet {
        eprintln!(
            "reference plugins from {} (for the names no given component has; --no-reference \
             to leave them out): {}",
            reference
                .as_deref()
                .map_or_else(String::new, |d| d.display().to_string()),
            added.join(", ")
        );
    }
    Ok(catalog)
}

/// The components a harness argument names: one `.wasm` file, the `.wasm` files of a directory,
/// or the built components of a plugin crate or workspace directory.
pub fn component_files(arg: &Path) -> Result<Vec<PathBuf>> {
    if arg.is_file() {
        return Ok(vec![arg.to_path_buf()]);
    }
    if !arg.is_dir() {
        bail!(
            "{} does not exist: give a component (.wasm), a directory of components, or a plugin crate directory",
            arg.display()
        );
    }
    match crate::kits::Lang::of(arg) {
        Some(crate::kits::Lang::Rust) => return scaffold::built_components(arg),
        Some(lang) => return crate::kits::built_components(lang, arg),
        None => {}
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(arg)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no .wasm components", arg.display());
    }
    Ok(files)
}

/// The plugins available to a chain, by described name, and the files that failed to load.
#[derive(Clone)]
pub struct Catalog {
    /// Loaded plugins by `describe().name`: each distinct component (by digest) with the file
    /// it came from, in file order.
    pub plugins: BTreeMap<String, Vec<(PathBuf, Arc<LoadedPlugin>)>>,
    /// Files that are not loadable plugins, with why.
    pub rejected: Vec<(PathBuf, String)>,
}

impl Catalog {
    /// Loads every component the argument names. A file that fails to load is kept in
    /// `rejected`; it matters only if a chain names it. The same bytes in two files are one
    /// plugin.
    pub fn load(engine: &Engine, arg: &Path) -> Result<Self> {
        Self::load_as(engine, arg, None)
    }

    /// [`load`](Self::load), under the named limits profile (`None`: as granted).
    pub fn load_as(engine: &Engine, arg: &Path, profile: Option<&str>) -> Result<Self> {
        let mut plugins: BTreeMap<String, Vec<(PathBuf, Arc<LoadedPlugin>)>> = BTreeMap::new();
        let mut rejected = Vec::new();
        for file in component_files(arg)? {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let loaded = match profile {
                Some(profile) => engine.load_as(&bytes, profile).map(|(p, _)| p),
                None => engine.load(&bytes),
            };
            match loaded {
                Ok(p) => {
                    let same = plugins.entry(p.info().name.clone()).or_default();
                    if !same.iter().any(|(_, q)| q.digest() == p.digest()) {
                        same.push((file, p));
                    }
                }
                Err(e) => rejected.push((file, format!("{e:#}"))),
            }
        }
        Ok(Self { plugins, rejected })
    }

    /// Loads the components of every argument, then, for each reference plugin (this
    /// checkout's, or `HEATBILL_REFERENCE_PLUGINS`) whose name none of them has, the reference
    /// one: a new plugin is tested after `season` and the tariffs without copying them. Returns
    /// the catalog and the names that came from the reference plugins.
    pub fn load_with_reference(
        engine: &Engine,
        args: &[PathBuf],
        reference: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<(Self, Vec<String>)> {
        let mut catalog = Catalog {
            plugins: BTreeMap::new(),
            rejected: Vec::new(),
        };
        for arg in args {
            let more = Catalog::load_as(engine, arg, profile)?;
            for (name, list) in more.plugins {
                let same = catalog.plugins.entry(name).or_default();
                for (file, p) in list {
                    if !same.iter().any(|(_, q)| q.digest() == p.digest()) {
                        same.push((file, p));
                    }
                }
            }
            catalog.rejected.extend(more.rejected);
        }
        let mut added = Vec::new();
        if let Some(dir) = reference {
            for stem in REFERENCE_PLUGINS {
                let file = dir.join(format!("{stem}.wasm"));
                let Ok(bytes) = std::fs::read(&file) else {
                    continue;
                };
                let Ok(p) = engine.load(&bytes) else {
                    continue;
                };
                let name = p.info().name.clone();
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    catalog.plugins.entry(name.clone())
                {
                    added.push(name);
                    slot.insert(vec![(file, p)]);
                }
            }
        }
        Ok((catalog, added))
    }

    /// The plugin a chain entry names (and, when given, its version), or an error listing what
    /// is available. Two different components that answer to the same name and version are
    /// refused rather than one picked silently, and so are several versions when the entry
    /// gives none.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedPlugin>> {
        let Some(found) = self.plugins.get(name) else {
            let mut msg = format!(
                "no plugin named {:?}; available: {}",
                safe(name),
                self.plugins
                    .keys()
                    .map(|k| safe(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (file, why) in &self.rejected {
                msg.push_str(&format!(
                    "\n  not loaded: {}: {}",
                    file.display(),
                    safe(why)
                ));
            }
            bail!(msg)
        };
        let matching: Vec<&(PathBuf, Arc<LoadedPlugin>)> = found
            .iter()
            .filter(|(_, p)| version.is_none_or(|v| p.info().version == v))
            .collect();
        let list = |of: &[&(PathBuf, Arc<LoadedPlugin>)]| {
            of.iter()
                .map(|(f, p)| format!("{} in {}", safe(&p.info().version), f.display()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (matching.as_slice(), version) {
            ([(_, p)], _) => Ok(p.clone()),
            ([], Some(v)) => bail!(
                "no component of {:?} is version {:?}; found {}",
                safe(name),
                safe(v),
                list(&found.iter().collect::<Vec<_>>())
            ),
            (several, _)
                if several
                    .iter()
                    .all(|(_, p)| p.info().version == several[0].1.info().version) =>
            {
                bail!(
                    "{} different components describe themselves as {} {}: {}; keep one",
                    several.len(),
                    safe(name),
                    safe(&several[0].1.info().version),
                    list(several)
                )
            }
            (several, _) => bail!(
                "{} components are named {:?}: {}; give the chain entry a version, or keep one",
                several.len(),
                safe(name),
                list(several)
            ),
        }
    }
}

/// Case files named by the arguments: files, or every `*.toml` of a directory (sorted).
pub fn case_files(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .toml case files", a.display());
            }
            out.extend(files);
        } else if a.is_file() {
            out.push(a.clone());
        } else {
            bail!("case file {} does not exist", a.display());
        }
    }
    Ok(out)
}

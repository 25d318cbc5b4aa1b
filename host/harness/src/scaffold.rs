//! `heatbill plugin new` and `heatbill plugin build`: a plugin crate from the template, and
//! cargo driven for the guest target.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The guest target every plugin is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The template's files: (path in the new crate, contents with `{{…}}` placeholders).
const TEMPLATE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/plugin/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/plugin/src/lib.rs")),
    ("cases.toml", include_str!("../templates/plugin/cases.toml")),
    ("README.md", include_str!("../templates/plugin/README.md")),
];

/// The guest SDK's files, vendored into new plugins (`vendor/heatbill-sdk/`): its sources, its
/// README, and the contract it is built on (`wit/`), from the checkout this binary was built
/// from. The manifest is rendered from `templates/sdk/Cargo.toml` (no workspace inheritance).
const SDK_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../plugins/sdk/README.md")),
    ("wit/rules.wit", include_str!("../../../wit/rules.wit")),
    (
        "src/lib.rs",
        include_str!("../../../plugins/sdk/src/lib.rs"),
    ),
    (
        "src/area.rs",
        include_str!("../../../plugins/sdk/src/area.rs"),
    ),
    (
        "src/units.rs",
        include_str!("../../../plugins/sdk/src/units.rs"),
    ),
    (
        "src/contract.rs",
        include_str!("../../../plugins/sdk/src/contract.rs"),
    ),
    (
        "src/batch.rs",
        include_str!("../../../plugins/sdk/src/batch.rs"),
    ),
    (
        "src/bits.rs",
        include_str!("../../../plugins/sdk/src/bits.rs"),
    ),
    (
        "src/date.rs",
        include_str!("../../../plugins/sdk/src/date.rs"),
    ),
    (
        "src/decimal.rs",
        include_str!("../../../plugins/sdk/src/decimal.rs"),
    ),
    (
        "src/instance.rs",
        include_str!("../../../plugins/sdk/src/instance.rs"),
    ),
    (
        "src/native.rs",
        include_str!("../../../plugins/sdk/src/native.rs"),
    ),
    (
        "src/params.rs",
        include_str!("../../../plugins/sdk/src/params.rs"),
    ),
    (
        "src/season.rs",
        include_str!("../../../plugins/sdk/src/season.rs"),
    ),
    (
        "src/testing.rs",
        include_str!("../../../plugins/sdk/src/testing.rs"),
    ),
];

/// The vendored SDK's manifest.
const SDK_MANIFEST: &str = include_str!("../templates/sdk/Cargo.toml");

/// The SDK version this binary vendors (the guest SDK's own).
pub const SDK_VERSION: &str = "0.2.0";

/// The contract version the SDK targets.
pub const SDK_CONTRACT: &str = "0.2.0";

/// How a new plugin gets the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A copy in the plugin's `vendor/heatbill-sdk/`, written from this binary (the default:
    /// the crate builds anywhere, offline).
    Vendored,
    /// A path dependency on an SDK crate (a heatbill checkout's `plugins/sdk`).
    Path(PathBuf),
    /// A registry dependency on a published version.
    Version(String),
}

impl SdkSource {
    /// The plugin manifest's dependency line.
    fn dependency(&self) -> String {
        match self {
            SdkSource::Vendored => r#"heatbill-sdk = { path = "vendor/heatbill-sdk" }"#.into(),
            SdkSource::Path(p) => format!(
                "heatbill-sdk = {{ path = {:?} }}",
                p.to_string_lossy().replace('\\', "/")
            ),
            SdkSource::Version(v) => format!("heatbill-sdk = {v:?}"),
        }
    }

    /// What `plugin new` says it chose.
    pub fn describe(&self) -> String {
        match self {
            SdkSource::Vendored => format!(
                "heatbill-sdk {SDK_VERSION} (contract heatbill:rules@{SDK_CONTRACT}), vendored into \
                 vendor/heatbill-sdk: the crate builds on any machine, offline"
            ),
            SdkSource::Path(p) => format!(
                "heatbill-sdk from {} (a path dependency: the crate builds where that path exists)",
                p.display()
            ),
            SdkSource::Version(v) => format!(
                "heatbill-sdk {v} from the crates registry (the crate builds where that version is \
                 published)"
            ),
        }
    }
}

/// Checks a plugin name: lowercase ASCII letters, digits and dashes, starting with a letter.
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "{name:?} is not a plugin name: use lowercase letters, digits and dashes, starting with a letter (e.g. `xuchang-tariff`)"
        );
    }
    Ok(())
}

/// Checks an SDK path given to `plugin new --sdk-path`, and makes it absolute.
pub fn sdk_path(given: &Path) -> Result<PathBuf> {
    let p = given
        .canonicalize()
        .with_context(|| format!("the SDK path {} does not exist", given.display()))?;
    if !p.join("Cargo.toml").exists() {
        bail!(
            "{} is not the SDK crate (no Cargo.toml): give a heatbill checkout's plugins/sdk",
            p.display()
        );
    }
    Ok(p)
}

/// Renders the template into `dir`. Refuses to overwrite anything.
pub fn render(name: &str, dir: &Path, sdk: &SdkSource) -> Result<Vec<PathBuf>> {
    check_name(name)?;
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another --dir or remove it",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    let dependency = sdk.dependency();
    let mut written = Vec::new();
    let mut files: Vec<(String, String)> = TEMPLATE
        .iter()
        .map(|(rel, text)| {
            let out = text
                .replace("{{name}}", name)
                .replace("{{crate_name}}", &crate_name)
                .replace("{{sdk_dependency}}", &dependency);
            (rel.to_string(), out)
        })
        .collect();
    if *sdk == SdkSource::Vendored {
        let base = "vendor/heatbill-sdk";
        files.push((
            format!("{base}/Cargo.toml"),
            SDK_MANIFEST
                .replace("{{sdk_version}}", SDK_VERSION)
                .replace("{{contract}}", SDK_CONTRACT),
        ));
        for (rel, text) in SDK_FILES {
            files.push((format!("{base}/{rel}"), text.to_string()));
        }
    }
    for (rel, out) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("template paths have a parent"))?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Builds the crate or workspace at `dir` for the guest target in release and returns the
/// components cargo produced. Cargo's own output goes to the terminal.
pub fn build(dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "{} has no Cargo.toml: give the directory of a plugin crate (`heatbill plugin new` makes one)",
            dir.display()
        );
    }
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo: is Rust installed?")?;
    let stdout = child.stdout.take().expect("piped");
    let mut components = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                components.push(PathBuf::from(f));
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "cargo build failed (see above); is the guest target installed? `rustup target add {GUEST_TARGET}`"
        );
    }
    components.sort();
    components.dedup();
    Ok(components)
}

/// The components built for a crate or workspace directory (without building): the `.wasm`
/// files in its target directory for the guest target, as `cargo metadata` reports it.
pub fn built_components(dir: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed for {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let target = PathBuf::from(
        meta["target_directory"]
            .as_str()
            .context("cargo metadata has no target_directory")?,
    )
    .join(GUEST_TARGET)
    .join("release");
    let mut names = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        for t in pkg["targets"].as_array().into_iter().flatten() {
            let cdylib = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if cdylib && let Some(n) = t["name"].as_str() {
                names.push(format!("{}.wasm", n.replace('-', "_")));
            }
        }
    }
    let found: Vec<PathBuf> = names
        .iter()
        .map(|n| target.join(n))
        .filter(|p| p.exists())
        .collect();
    if found.is_empty() {
        bail!(
            "no built components for {}: run `heatbill plugin build {}` first",
            dir.display(),
            dir.display()
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    /// The vendored SDK's manifest asks for the dependencies the guest workspace builds the SDK
    /// with: a vendored plugin builds what the reference plugins are built with.
    #[test]
    fn the_vendored_sdk_manifest_matches_the_guest_workspace() {
        let workspace: toml::Table = include_str!("../../../plugins/Cargo.toml").parse().unwrap();
        let deps = &workspace["workspace"]["dependencies"];
        let vendored: toml::Table = super::SDK_MANIFEST.parse().unwrap();
        let sdk: toml::Table = include_str!("../../../plugins/sdk/Cargo.toml")
            .parse()
            .unwrap();
        for name in sdk["dependencies"].as_table().unwrap().keys() {
            assert_eq!(
                vendored["dependencies"][name], deps[name],
                "dependency {name} of the vendored SDK"
            );
        }
        assert_eq!(
            sdk["package"]["version"].as_str(),
            Some(super::SDK_VERSION),
            "SDK_VERSION is the SDK crate's version"
        );
        // Every source file of the SDK is vendored.
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk/src");
        for entry in std::fs::read_dir(src).unwrap() {
            let name = format!("src/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(
                super::SDK_FILES.iter().any(|(rel, _)| *rel == name),
                "{name} is not in SDK_FILES"
            );
        }
    }
}

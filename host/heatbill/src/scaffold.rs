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

/// Finds the guest SDK: the given path, else `plugins/sdk` of the checkout this binary was
/// built from, else `plugins/sdk` above the current directory.
pub fn find_sdk(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        let p = p
            .canonicalize()
            .with_context(|| format!("the SDK path {} does not exist", p.display()))?;
        if !p.join("Cargo.toml").exists() {
            bail!("{} is not the SDK crate (no Cargo.toml)", p.display());
        }
        return Ok(p);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk");
    if built_from.join("Cargo.toml").exists() {
        return Ok(built_from.canonicalize()?);
    }
    let mut dir = std::env::current_dir()?;
    loop {
        let candidate = dir.join("plugins/sdk");
        if candidate.join("Cargo.toml").exists() {
            return Ok(candidate);
        }
        if !dir.pop() {
            bail!(
                "cannot find the heatbill guest SDK: pass --sdk <path to plugins/sdk> or set HEATBILL_SDK"
            );
        }
    }
}

/// Renders the template into `dir`. Refuses to overwrite anything.
pub fn render(name: &str, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>> {
    check_name(name)?;
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another --dir or remove it",
            dir.display()
        );
    }
    let crate_name = name.replace('-', "_");
    let sdk = sdk.to_string_lossy().replace('\\', "/");
    let mut written = Vec::new();
    for (rel, text) in TEMPLATE {
        let out = text
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{sdk_path}}", &sdk);
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

//! The Python and JavaScript plugin kits: `heatbill plugin new --lang python|js` and
//! `heatbill plugin build` for their plugins.
//!
//! A kit is a directory of the repository (`plugins/python`, `plugins/js`): a build script,
//! the toolchain's pins, the SDK and the template. The binary embeds each kit (see `build.rs`)
//! so that a plugin made outside a checkout vendors its kit, as a Rust plugin vendors its SDK:
//! `vendor/heatbill-kit/` holds the build script, the pins, the SDK and the contract's WIT.
//! The toolchains themselves (componentize-py from PyPI, ComponentizeJS from npm, at the pinned
//! versions) are installed by the build script on first use, into a directory of the user's
//! cache shared by every plugin of that kit version.
//!
//! `heatbill plugin build` runs the binary's own copy of the build script, with the binary's
//! own toolchain pins, never a script or pins found in the plugin's directory: a plugin is
//! someone else's code, and building it must not run what its directory supplies outside the
//! sandbox. The plugin's vendored SDK and WIT are used as they are (they are bundled into the
//! component, which runs sandboxed and is checked at load like any other).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

include!(concat!(env!("OUT_DIR"), "/kits.rs"));

/// The contract every kit builds against (its newest version).
const WIT: &str = include_str!("../../../wit/rules.wit");

/// Where a plugin vendors its kit.
const VENDORED: &str = "vendor/heatbill-kit";

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the heatbill SDK crate.
    Rust,
    /// Python 3, built with componentize-py.
    Python,
    /// JavaScript, built with ComponentizeJS.
    Js,
}

impl Lang {
    /// The language of the plugin directory `dir`, by its manifest.
    pub fn of(dir: &Path) -> Option<Lang> {
        if dir.join("Cargo.toml").is_file() {
            Some(Lang::Rust)
        } else if dir.join("pyproject.toml").is_file() {
            Some(Lang::Python)
        } else if dir.join("package.json").is_file() {
            Some(Lang::Js)
        } else {
            None
        }
    }

    /// The embedded kit (none for Rust, whose template is the scaffold's).
    fn kit(self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            Lang::Rust => &[],
            Lang::Python => PYTHON_KIT,
            Lang::Js => JS_KIT,
        }
    }

    /// The kit's build script, relative to the kit.
    fn script(self) -> &'static str {
        match self {
            Lang::Rust => "",
            Lang::Python => "build.py",
            Lang::Js => "build.mjs",
        }
    }

    /// The interpreter that runs the build script, and what to install if it is missing.
    fn interpreter(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("cargo", "Rust (rustup)"),
            Lang::Python => ("python3", "Python 3.11 or newer"),
            Lang::Js => ("node", "Node.js 20 or newer (with npm)"),
        }
    }

    /// The file whose contents pin the toolchain: a new pin is a new toolchain directory.
    fn pins(self) -> &'static str {
        match self {
            Lang::Rust => "",
            Lang::Python => "toolchain.txt",
            Lang::Js => "package-lock.json",
        }
    }
}

/// Writes the template of `lang` into `dir` (which must be empty or absent) for the plugin
/// `name`, and the kit into `dir/vendor/heatbill-kit`. Returns the files written.
pub fn render(lang: Lang, name: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.exists() && dir.read_dir()?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another --dir or remove it",
            dir.display()
        );
    }
    let module = name.replace('-', "_");
    let mut written = Vec::new();
    let mut write = |path: PathBuf, bytes: &[u8]| -> Result<()> {
        std::fs::create_dir_all(path.parent().expect("kit paths have a parent"))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for (rel, bytes) in lang.kit() {
        match rel.strip_prefix("template/") {
            Some(rel) => {
                let rel = rel.replace("{{name}}", name).replace("{{module}}", &module);
                let text = String::from_utf8_lossy(bytes)
                    .replace("{{name}}", name)
                    .replace("{{module}}", &module);
                write(dir.join(rel), text.as_bytes())?;
            }
            None => write(dir.join(VENDORED).join(rel), bytes)?,
        }
    }
    write(dir.join(VENDORED).join("wit/rules.wit"), WIT.as_bytes())?;
    Ok(written)
}

/// The kit whose SDK and contract the plugin at `dir` builds with: its vendored copy, else the
/// kit of the checkout it lies in (a kit's own plugins, `plugins/python/late-fee`). Its build
/// script and pins are not run: see [`own_kit`].
fn kit_dir(lang: Lang, dir: &Path) -> Result<PathBuf> {
    let vendored = dir.join(VENDORED);
    if vendored.join(lang.script()).is_file() {
        return Ok(vendored);
    }
    let abs = dir
        .canonicalize()
        .with_context(|| format!("cannot open {}", dir.display()))?;
    for up in abs.ancestors().skip(1) {
        if up.join(lang.script()).is_file() && up.join("sdk").is_dir() {
            return Ok(up.to_path_buf());
        }
    }
    bail!(
        "{} has no {VENDORED}/{}: make the plugin with `heatbill plugin new --lang {}`, which \
         vendors the kit, or copy a kit's {VENDORED} into it",
        dir.display(),
        lang.script(),
        if lang == Lang::Python { "python" } else { "js" }
    )
}

/// The binary's own copy of `lang`'s kit (build script, pins, SDK; not the template) and the
/// contract's WIT (`wit/rules.wit`), written into a fresh temporary directory: the build runs
/// this script with these pins, whatever the plugin's directory holds.
fn own_kit(lang: Lang) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("heatbill-kit-")
        .tempdir()
        .context("cannot make a temporary directory for the kit")?;
    let write = |rel: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("kit paths have a parent"))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    for (rel, bytes) in lang.kit() {
        if !rel.starts_with("template/") {
            write(rel, bytes)?;
        }
    }
    write("wit/rules.wit", WIT.as_bytes())?;
    Ok(dir)
}

/// Says so on stderr when the plugin's kit has a build script other than the binary's, which
/// is the one that runs.
fn note_other_script(lang: Lang, kit: &Path) {
    let theirs = kit.join(lang.script());
    let ours = lang
        .kit()
        .iter()
        .find(|(rel, _)| *rel == lang.script())
        .map(|(_, b)| *b);
    if let (Ok(bytes), Some(ours)) = (std::fs::read(&theirs), ours)
        && bytes != ours
    {
        eprintln!(
            "note: {} is not this heatbill's {}; heatbill builds with its own copy (and its own \
             toolchain pins), never with a script found beside the plugin. Make the plugin \
             again with `heatbill plugin new` to vendor the current kit.",
            theirs.display(),
            lang.script()
        );
    }
}

/// The shared toolchain directory for a kit: `<cache>/heatbill/toolchains/<lang>-<pins hash>`.
fn toolchain_dir(lang: Lang, kit: &Path) -> Option<PathBuf> {
    use sha2::Digest as _;
    let pins = std::fs::read(kit.join(lang.pins())).ok()?;
    let hash = hex::encode(&sha2::Sha256::digest(&pins)[..6]);
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let name = if lang == Lang::Python { "python" } else { "js" };
    Some(
        base.join("heatbill/toolchains")
            .join(format!("{name}-{hash}")),
    )
}

/// Makes a shared toolchain directory installable: npm installs what a `package.json` and its
/// lock pin, so the kit's two files go there (the lock links the kit's SDK by path, so the SDK
/// goes there too). Python's build script makes its venv from the pins itself.
fn prepare_toolchain(lang: Lang, kit: &Path, dir: &Path) -> Result<()> {
    if lang != Lang::Js || dir.join("package-lock.json").is_file() {
        return Ok(());
    }
    let copy = |from: &Path, to: &Path| -> Result<()> {
        std::fs::create_dir_all(to.parent().expect("a toolchain path has a parent"))?;
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(())
    };
    for (rel, _) in JS_KIT.iter().filter(|(rel, _)| rel.starts_with("sdk/")) {
        copy(&kit.join(rel), &dir.join(rel))?;
    }
    copy(&kit.join("package.json"), &dir.join("package.json"))?;
    // The lock last: its presence says the directory is complete.
    copy(
        &kit.join("package-lock.json"),
        &dir.join("package-lock.json"),
    )
}

/// The plugin's name, from its manifest (`[project].name` or package.json's `name`).
fn plugin_name(lang: Lang, dir: &Path) -> Result<String> {
    let name = match lang {
        Lang::Python => {
            let path = dir.join("pyproject.toml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let t: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            t.get("project")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
                .with_context(|| format!("{} has no [project] name", path.display()))?
        }
        _ => {
            let path = dir.join("package.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            v["name"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("{} has no \"name\"", path.display()))?
        }
    };
    crate::scaffold::check_name(&name)?;
    Ok(name)
}

/// Builds the Python or JavaScript plugin at `dir` into `dir/target/<name>.wasm` with the
/// binary's own copy of its kit's build script (which installs the toolchain the binary pins on
/// first use) and the plugin's SDK and contract, and returns the component.
pub fn build(lang: Lang, dir: &Path) -> Result<Vec<PathBuf>> {
    let kit = kit_dir(lang, dir)?;
    let name = plugin_name(lang, dir)?;
    let out = dir.join("target").join(format!("{name}.wasm"));
    let own = own_kit(lang)?;
    note_other_script(lang, &kit);
    // The plugin's contract (vendored), else the binary's (a kit's own plugins in a checkout).
    let wit = if kit.join("wit/rules.wit").is_file() {
        kit.join("wit")
    } else {
        own.path().join("wit")
    };
    let (program, install) = lang.interpreter();
    let mut cmd = Command::new(program);
    cmd.arg(own.path().join(lang.script()))
        .arg(dir)
        .arg("--out")
        .arg(&out)
        .arg("--wit")
        .arg(wit)
        .arg("--sdk")
        .arg(kit.join("sdk"));
    let toolchain = toolchain_dir(lang, own.path()).with_context(|| {
        "neither XDG_CACHE_HOME nor HOME is set: the kit's toolchain is installed in the \
         user's cache"
    })?;
    prepare_toolchain(lang, own.path(), &toolchain)?;
    cmd.arg("--toolchain").arg(toolchain);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {program}: install {install}"))?;
    if !status.success() {
        bail!("{} failed for {} (see above)", lang.script(), dir.display());
    }
    Ok(vec![out])
}

/// The components built for the Python or JavaScript plugin at `dir` (without building).
pub fn built_components(lang: Lang, dir: &Path) -> Result<Vec<PathBuf>> {
    let name = plugin_name(lang, dir)?;
    let out = dir.join("target").join(format!("{name}.wasm"));
    if !out.is_file() {
        bail!(
            "{} is not built: run `heatbill plugin build {}` first",
            out.display(),
            dir.display()
        );
    }
    Ok(vec![out])
}

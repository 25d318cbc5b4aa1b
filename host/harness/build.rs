//! Embeds the Python and JavaScript plugin kits (`plugins/python`, `plugins/js`) in the binary,
//! so that `heatbill plugin new --lang python|js` works outside a checkout, as the Rust template
//! does: the kit's build script, toolchain pins, SDK, template and the contract's WIT, listed
//! here by walking the kit (what a kit adds is embedded without a list to keep in step).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What of each kit is embedded: its top-level entries (files, or directories walked whole).
const KITS: &[(&str, &str, &[&str])] = &[
    (
        "PYTHON_KIT",
        "plugins/python",
        &["build.py", "toolchain.txt", "sdk", "template"],
    ),
    (
        "JS_KIT",
        "plugins/js",
        &[
            "build.mjs",
            "package.json",
            "package-lock.json",
            "sdk",
            "template",
        ],
    ),
];

/// Never embedded: installed toolchains, build output, caches.
const SKIP: &[&str] = &[
    "node_modules",
    "target",
    "__pycache__",
    ".toolchain",
    ".venv",
];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if SKIP.contains(&name) || name.ends_with(".pyc") {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let mut code = String::new();
    for (constant, kit, entries) in KITS {
        let base = root.join(kit);
        println!("cargo:rerun-if-changed={}", base.display());
        let mut files = Vec::new();
        for e in *entries {
            let p = base.join(e);
            println!("cargo:rerun-if-changed={}", p.display());
            if p.is_dir() {
                walk(&p, &mut files);
            } else if p.is_file() {
                files.push(p);
            }
        }
        for dir in files.iter().filter_map(|f| f.parent()) {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        writeln!(code, "pub const {constant}: &[(&str, &[u8])] = &[").unwrap();
        for f in &files {
            let rel = f
                .strip_prefix(&base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let abs = f.canonicalize().unwrap();
            writeln!(
                code,
                "    ({rel:?}, include_bytes!({:?})),",
                abs.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let wit = root.join("wit/rules.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("kits.rs");
    std::fs::write(out, code).unwrap();
}

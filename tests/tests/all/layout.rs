//! The crates' layering, checked: no file-level `use` cycle between the modules of a crate.
//!
//! A module that imports another which imports it back means neither can be read, changed or
//! moved alone; the crates were laid out so every arrow points one way (the engine's parts below
//! `engine.rs`, the store's backends below its shared SQL layer, the API's resources below their
//! router). This test reads every crate's sources, finds the modules each file names (`crate::…`,
//! `super::…`), and fails naming the files of any cycle, so a new arrow the wrong way is found
//! when it is written rather than when someone tries to split the crate.
//!
//! A module and its own submodules are one unit here (a parent declares its children and the
//! children may use what the parent shares, by design): an arrow between two files counts
//! between the two siblings that hold them under their nearest common parent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// The crates whose modules are checked.
const CRATES: [&str; 6] = ["engine", "runtime", "cases", "harness", "api", "heatbill"];

type Module = Vec<String>;

/// Every `.rs` file under `src`, by module path (`lib.rs`, `main.rs` and `mod.rs` are their
/// directory's module).
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut m: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(m.last().map(String::as_str), Some("lib" | "main" | "mod")) {
                m.pop();
            }
            (m, p)
        })
        .collect()
}

/// The paths a file names: `crate::a::b…` and `super::…::a…` (with `{…}` groups opened), as
/// segments after `crate` (a `super` resolved against `module`). Comments are skipped.
fn named_paths(text: &str, module: &Module) -> Vec<Module> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let starts = |w: &str| rest.starts_with(w) && (i == 0 || !is_ident(bytes[i - 1] as char));
        let (mut base, mut j) = if starts("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if starts("super::") {
            let mut base = module.clone();
            let mut j = i;
            while code[j..].starts_with("super::") {
                base.pop();
                j += "super::".len();
            }
            (base, j)
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        // The path's segments up to a `{` group or the first non-path character.
        loop {
            let seg: String = code[j..].chars().take_while(|&c| is_ident(c)).collect();
            if seg.is_empty() {
                break;
            }
            j += seg.len();
            base.push(seg);
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        if code[j..].starts_with('{') {
            let end = code[j..].find('}').map_or(code.len(), |e| j + e);
            for part in code[j + 1..end].split(',') {
                let mut p = base.clone();
                p.extend(
                    part.trim()
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                );
                out.push(p);
            }
            j = end;
        } else {
            out.push(base);
        }
        i = j.max(i + 1);
    }
    out
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit(t: &mut T<'_>, v: &Module) {
        let n = t.index.len();
        t.index.insert(v.clone(), n);
        t.low.insert(v.clone(), n);
        t.stack.push(v.clone());
        for w in t.edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_crate_has_a_use_cycle_between_its_modules() {
    let mut found = Vec::new();
    for krate in CRATES {
        let src = repo_root().join("host").join(krate).join("src");
        let mods = modules(&src);
        assert!(!mods.is_empty(), "no sources under {}", src.display());
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (m, file) in &mods {
            let text = std::fs::read_to_string(file).unwrap();
            for path in named_paths(&text, m) {
                // The longest module that the path names.
                let mut t: Module = Vec::new();
                for s in path {
                    t.push(s);
                    if !mods.contains_key(&t) {
                        t.pop();
                        break;
                    }
                }
                // A module and its ancestors or descendants are one unit.
                if t.starts_with(m) || m.starts_with(&t) {
                    continue;
                }
                let common = m.iter().zip(&t).take_while(|(a, b)| a == b).count();
                edges
                    .entry(m[..=common].to_vec())
                    .or_default()
                    .insert(t[..=common].to_vec());
            }
        }
        for comp in cycles(&edges) {
            let name = |m: &Module| {
                if m.is_empty() {
                    "lib".to_string()
                } else {
                    m.join("::")
                }
            };
            let arrows: Vec<String> = comp
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| comp.contains(b))
                        .map(move |b| format!("{} -> {}", name(a), name(b)))
                })
                .collect();
            found.push(format!("host/{krate}: {}", arrows.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "module cycles (each arrow: a file of the first names the second; move what both \
         need below them): {found:#?}"
    );
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // The check itself, on a made-up crate: a -> b -> a is found, a -> a::c is not an arrow.
    let m = |s: &str| s.split("::").map(str::to_string).collect::<Module>();
    let a = named_paths(
        "use crate::b::X;\nuse crate::a::c;\n// use crate::z;",
        &m("a"),
    );
    assert_eq!(a, vec![m("b::X"), m("a::c")]);
    let grouped = named_paths("use super::{b, c::D};", &m("a::x"));
    assert_eq!(grouped, vec![m("a::b"), m("a::c::D")]);
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("a")]));
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(cycles(&edges).len(), 1);
}

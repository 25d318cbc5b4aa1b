//! Shared helpers: where the built plugin components are.

#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `./dev plugins` leaves the built components.
pub fn plugins_dir() -> PathBuf {
    repo_root().join("plugins/target/wasm32-wasip2/release")
}

/// The path of a built component, by crate name (`area-tariff` or `area_tariff`).
pub fn component_path(name: &str) -> PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let path = plugins_dir().join(file);
    assert!(
        path.exists(),
        "component {} is missing: build the plugins first with `./dev plugins` \
         (or run the whole suite with `./dev test`)",
        path.display()
    );
    path
}

/// The bytes of a built component, by crate name.
pub fn component(name: &str) -> Vec<u8> {
    std::fs::read(component_path(name)).expect("read component")
}

//! The bytes of an upload before anything reads them as a program: their size against the
//! limit, what their header says they are, and their digest (a component's name in the store,
//! the caches and the grants). Below the engine, the check report and the compiler, which all
//! start here.

use std::fmt;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::LoadError;

/// What the first bytes of a binary say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryFormat {
    /// A WebAssembly component (the only thing a plugin can be).
    Component,
    /// A core WebAssembly module.
    CoreModule,
    /// Not WebAssembly, or a version the engine does not know.
    NotWasm,
}

impl BinaryFormat {
    /// Reads the 8-byte header: magic `\0asm`, then version 1 layer 0 (a core module) or
    /// version 0x0d layer 1 (a component).
    pub fn of(bytes: &[u8]) -> BinaryFormat {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => BinaryFormat::CoreModule,
            Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => BinaryFormat::Component,
            _ => BinaryFormat::NotWasm,
        }
    }
}

impl fmt::Display for BinaryFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryFormat::Component => "WebAssembly component",
            BinaryFormat::CoreModule => "core WebAssembly module (not a component)",
            BinaryFormat::NotWasm => "not WebAssembly",
        })
    }
}

/// A component's SHA-256 in hex: its name in the store and caches, and the key of its grant
/// ([`EngineConfig::grants`]).
pub fn component_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses a component over its size limit.
pub(crate) fn check_size(size: usize, limit: usize) -> Result<(), LoadError> {
    if size > limit {
        return Err(LoadError::TooLarge { size, limit });
    }
    Ok(())
}

/// Refuses anything but a WebAssembly component, saying what the bytes are instead.
pub(crate) fn check_format(bytes: &[u8]) -> Result<(), LoadError> {
    match BinaryFormat::of(bytes) {
        BinaryFormat::Component => Ok(()),
        BinaryFormat::CoreModule => Err(LoadError::CoreModule),
        BinaryFormat::NotWasm => Err(LoadError::NotWasm {
            detail: describe_header(bytes),
        }),
    }
}

fn describe_header(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".to_string();
    }
    if bytes.starts_with(b"\0asm") {
        return format!(
            "the header is `\\0asm` with an unknown version {:02x?}",
            &bytes[4..bytes.len().min(8)]
        );
    }
    format!(
        "it starts with {:02x?} instead of the WebAssembly magic `\\0asm`",
        &bytes[..bytes.len().min(8)]
    )
}

//! The Python and JavaScript kits carry copies of the contract's constants (the `day-bits`
//! flags, the longest rule-error message, the largest decimal scale, the contract's name),
//! written by hand in their own languages. This test reads the kits' sources and fails when a
//! copy differs from the host's, so a change to the contract cannot leave a kit behind
//! silently. (Generating the kits' copies at build time is the next step; until then, this is
//! the one source's guard.)

use std::path::PathBuf;

use crate::columns::bits;

/// A kit source file, from the checkout's `plugins/` directory.
fn kit(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(path);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read the kit's {}: {e}", file.display()))
}

/// The text after `NAME =` on the line that defines `name`: `NAME = …` in Python,
/// `export const NAME = …;` in JavaScript.
fn definition<'a>(src: &'a str, name: &str) -> Option<&'a str> {
    src.lines().find_map(|line| {
        let l = line.trim();
        let l = l.strip_prefix("export const ").unwrap_or(l);
        let rest = l.strip_prefix(name)?.trim_start();
        let value = rest.strip_prefix('=')?;
        Some(value.trim().trim_end_matches(';').trim())
    })
}

/// An integer definition: a number (`1000`, `1_000`) or a shift (`1 << 3`).
fn integer(src: &str, name: &str, file: &str) -> u64 {
    let v = definition(src, name).unwrap_or_else(|| panic!("{file} does not define {name}"));
    let number = |s: &str| s.trim().replace('_', "").parse::<u64>().ok();
    let parsed = match v.split_once("<<") {
        Some((a, b)) => number(a).zip(number(b)).map(|(a, b)| a << b),
        None => number(v),
    };
    parsed.unwrap_or_else(|| panic!("{file}: {name} = {v} is not an integer"))
}

const BITS: [(&str, u32); 11] = [
    ("NON_RESIDENTIAL", bits::NON_RESIDENTIAL),
    ("SUSPENDED", bits::SUSPENDED),
    ("METERED", bits::METERED),
    ("LOW_INCOME", bits::LOW_INCOME),
    ("HAS_USABLE_AREA", bits::HAS_USABLE_AREA),
    ("HAS_CEILING_HEIGHT", bits::HAS_CEILING_HEIGHT),
    ("HAS_HEAT", bits::HAS_HEAT),
    ("HAS_INDOOR_TEMPERATURE", bits::HAS_INDOOR_TEMPERATURE),
    ("HAS_ARREARS_SINCE", bits::HAS_ARREARS_SINCE),
    ("HAS_SEASON", bits::HAS_SEASON),
    ("SEASON_CHARGED", bits::SEASON_CHARGED),
];

#[test]
fn the_kits_copies_of_the_contracts_constants_agree_with_the_host() {
    let message = crate::contract::MAX_MESSAGE_BYTES as u64;
    let scale = u64::from(crate::decimal::MAX_SCALE);
    for (lang, bits_file, errors_file, money_file) in [
        (
            "Python",
            "python/sdk/heatbill/bits.py",
            "python/sdk/heatbill/errors.py",
            "python/sdk/heatbill/money.py",
        ),
        (
            "JavaScript",
            "js/sdk/src/bits.js",
            "js/sdk/src/errors.js",
            "js/sdk/src/decimal.js",
        ),
    ] {
        let src = kit(bits_file);
        for (name, value) in BITS {
            assert_eq!(
                integer(&src, name, bits_file),
                u64::from(value),
                "the {lang} kit's {name} ({bits_file}) is not the host's day-bits flag"
            );
        }
        assert_eq!(
            integer(&kit(errors_file), "MAX_MESSAGE_BYTES", errors_file),
            message,
            "the {lang} kit's MAX_MESSAGE_BYTES ({errors_file})"
        );
        assert_eq!(
            integer(&kit(money_file), "MAX_SCALE", money_file),
            scale,
            "the {lang} kit's MAX_SCALE ({money_file})"
        );
    }
    let init = "python/sdk/heatbill/__init__.py";
    assert_eq!(
        definition(&kit(init), "CONTRACT"),
        Some(format!("\"heatbill:rules@{}\"", crate::CONTRACT_VERSION).as_str()),
        "the Python kit's CONTRACT ({init}) names another contract version"
    );
}

#[test]
fn definitions_are_read_as_written() {
    let py = "NON_RESIDENTIAL = 1 << 0\nMAX_SCALE_X = 3\nMAX_SCALE = 18\n";
    assert_eq!(integer(py, "NON_RESIDENTIAL", "t"), 1);
    assert_eq!(integer(py, "MAX_SCALE", "t"), 18);
    let js = "export const HAS_SEASON = 1 << 9;\nexport const MAX_MESSAGE_BYTES = 1_000;\n";
    assert_eq!(integer(js, "HAS_SEASON", "t"), 512);
    assert_eq!(integer(js, "MAX_MESSAGE_BYTES", "t"), 1000);
    assert_eq!(definition(js, "MISSING"), None);
}

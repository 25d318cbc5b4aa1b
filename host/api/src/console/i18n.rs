//! The console's words, from one catalogue per language (`messages/zh.txt`, `messages/en.txt`:
//! `key = text` lines). Simplified Chinese is the default for a company whose time zone is in
//! China; a user may choose either (`/console/lang/{zh|en}`). A unit test checks that both
//! catalogues have the same keys and that every key the templates use is in them.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// `zh` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The code a cookie and a URL use.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The HTML `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The other language (the switch in the header offers it).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// Whether a time zone is mainland China's (the zones the tz database has for it).
pub fn china(tz: &str) -> bool {
    matches!(
        tz,
        "Asia/Shanghai"
            | "Asia/Harbin"
            | "Asia/Chongqing"
            | "Asia/Chungking"
            | "Asia/Urumqi"
            | "Asia/Kashgar"
            | "PRC"
    )
}

const ZH: &str = include_str!("messages/zh.txt");
const EN: &str = include_str!("messages/en.txt");

fn parse(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn catalogue(lang: Lang) -> &'static HashMap<&'static str, &'static str> {
    static ZH_MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    static EN_MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    match lang {
        Lang::Zh => ZH_MAP.get_or_init(|| parse(ZH)),
        Lang::En => EN_MAP.get_or_init(|| parse(EN)),
    }
}

/// The words of one language, for a page's template.
#[derive(Debug, Clone, Copy)]
pub struct Msgs(pub Lang);

impl Msgs {
    /// The text of `key`; the key itself when the catalogue lacks it (a unit test keeps that
    /// from shipping).
    pub fn get<'a>(&self, key: &'a str) -> &'a str {
        catalogue(self.0).get(key).copied().unwrap_or(key)
    }

    /// The text of `{prefix}.{name}` (a state, a kind, a role); `name` itself when the
    /// catalogue has none (a value newer than the catalogue).
    pub fn of(&self, prefix: &str, name: &str) -> String {
        catalogue(self.0)
            .get(format!("{prefix}.{name}").as_str())
            .map(|s| s.to_string())
            .unwrap_or_else(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys() {
        let zh: std::collections::BTreeSet<_> = parse(ZH).into_keys().collect();
        let en: std::collections::BTreeSet<_> = parse(EN).into_keys().collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "only in zh: {only_zh:?}; only in en: {only_en:?}"
        );
    }

    /// Every key the templates and the pages' code look up names a key of the catalogues.
    #[test]
    fn every_key_used_is_in_the_catalogues() {
        let en = parse(EN);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // Templates look keys up with `t.get`; the pages' code with `b.tr` or `b.t.get` (a
        // bare `get` in code is a JSON lookup, not a message).
        let mut texts = Vec::new();
        for e in std::fs::read_dir(root.join("templates/console")).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            texts.push((text, &["t.get(\"", ".tr(\""][..]));
        }
        for e in std::fs::read_dir(root.join("src/console")).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(path).unwrap();
                texts.push((text, &["b.t.get(\"", ".tr(\""][..]));
            }
        }
        let mut missing = Vec::new();
        for (text, markers) in &texts {
            for marker in *markers {
                for part in text.split(marker).skip(1) {
                    let key = part.split('"').next().unwrap();
                    if !key.is_empty() && !en.contains_key(key) && !key.contains('{') {
                        missing.push(key.to_string());
                    }
                }
            }
        }
        missing.sort();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "keys not in the catalogues: {missing:?}"
        );
    }

    #[test]
    fn china_time_zones_get_chinese() {
        assert!(china("Asia/Harbin") && china("Asia/Shanghai"));
        assert!(!china("Europe/Berlin") && !china("Asia/Tokyo"));
    }
}

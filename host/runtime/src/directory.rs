//! The customer directory: who a customer is and where they live, as a cashier finds them.
//!
//! A customer's **profile** is their account number (户号), name, phone and address as a
//! heating company writes it: community (小区), building (楼号), unit (单元) and room (房号).
//! Bills do not depend on it (the tariff reads the customer's versions, `customer_versions`), so
//! a profile change never makes a billed day stale and never touches the data version the run's
//! caches key on.
//!
//! Profiles are **effective-dated and append-only**, like the rest of a customer's data: each
//! change is a new revision with its `valid_from`, who recorded it, why, and from where (an
//! import, the API, the CLI). The profile in force on a date is the latest revision of the
//! greatest `valid_from` on or before it; a correction of a past version is a new revision of
//! that `valid_from`, and the one it corrects stays. Nothing is updated or deleted.
//!
//! **Search** ([`Search`]) looks at each customer's newest profile (the latest revision of its
//! greatest `valid_from`): by account number (exact), by name (prefix), by the phone number's
//! last digits (suffix), by address (community, then building, unit and room: each given part
//! exact, narrowing from the community down). Every search is a range on an index, so it costs
//! the same on a million customers as on a thousand (BENCHMARKS.md measures it).
//!
//! Names and phone numbers are **personal data**: they are never written to a log, an import's
//! row errors do not quote them, and lists of customers show them masked ([`mask_name`],
//! [`mask_phone`]) unless the caller asks to see them (staff only, and the asking is logged
//! without the data).
//!
//! This module is pure: the store keeps the revisions, the API and the CLI show them.

use chrono::NaiveDate;
use serde::Serialize;

/// The separator of an address key's parts (a unit separator: no address holds one).
pub const ADDRESS_SEP: char = '\u{1f}';

/// The longest text a profile field holds, in characters.
pub const MAX_FIELD_CHARS: usize = 64;

/// The most customers one search returns.
pub const MAX_RESULTS: usize = 200;

/// A customer's profile: every field is optional (an imported customer may have only some).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The account number (户号) the company prints on bills and receipts; unique in the
    /// company among customers' newest profiles.
    pub account_no: Option<String>,
    /// The customer's name (personal data).
    pub name: Option<String>,
    /// The phone number, digits only with an optional leading `+` (personal data).
    pub phone: Option<String>,
    /// The community (小区).
    pub community: Option<String>,
    /// The building (楼号).
    pub building: Option<String>,
    /// The unit (单元).
    pub unit: Option<String>,
    /// The room (房号).
    pub room: Option<String>,
}

impl Profile {
    /// Normalizes and checks every field: text is trimmed (an empty field is absent), at most
    /// [`MAX_FIELD_CHARS`] characters, without control or invisible characters; an account
    /// number is an identifier; a phone number loses its spaces and hyphens and must then be
    /// 3–20 digits, with an optional leading `+`; an address part needs the parts above it.
    /// The error names the field and says what to write; it never quotes a name or a phone.
    pub fn normalized(self) -> Result<Profile, (&'static str, String)> {
        let text = |what: &'static str,
                    v: Option<String>,
                    personal: bool|
         -> Result<Option<String>, (&'static str, String)> {
            let Some(v) = v else { return Ok(None) };
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            if v.chars().count() > MAX_FIELD_CHARS {
                return Err((
                    what,
                    format!("longer than {MAX_FIELD_CHARS} characters: shorten it"),
                ));
            }
            if v.chars()
                .any(|c| c.is_control() || heatbill_engine::text::is_invisible(c))
            {
                let shown = if personal {
                    String::new()
                } else {
                    format!(" {}", heatbill_engine::text::terminal_safe(v, 40))
                };
                return Err((
                    what,
                    format!(
                        "the value{shown} holds control or invisible characters: write plain text"
                    ),
                ));
            }
            Ok(Some(v.to_string()))
        };
        let account_no = text("account_no", self.account_no, false)?;
        let name = text("name", self.name, true)?;
        let phone = match text("phone", self.phone, true)? {
            None => None,
            Some(p) => Some(
                normalize_phone(&p).ok_or((
                    "phone",
                    "not a phone number: write 3 to 20 digits, with an optional leading + (spaces \
                 and hyphens are ignored)"
                        .to_string(),
                ))?,
            ),
        };
        let community = text("community", self.community, false)?;
        let building = text("building", self.building, false)?;
        let unit = text("unit", self.unit, false)?;
        let room = text("room", self.room, false)?;
        for (what, part, above, above_name) in [
            ("building", &building, &community, "community"),
            ("unit", &unit, &building, "building"),
            ("room", &room, &unit, "unit"),
        ] {
            if part.is_some() && above.is_none() {
                return Err((
                    what,
                    format!(
                        "an address's {what} needs its {above_name}: give the {above_name} too"
                    ),
                ));
            }
        }
        Ok(Profile {
            account_no,
            name,
            phone,
            community,
            building,
            unit,
            room,
        })
    }

    /// The phone's digits reversed (what a suffix search ranges over), when there is a phone.
    pub fn phone_rev(&self) -> Option<String> {
        self.phone.as_deref().map(phone_rev)
    }

    /// The address parts joined by [`ADDRESS_SEP`] (what an address search ranges over), each
    /// part followed by the separator so that a part is matched whole.
    pub fn address_key(&self) -> Option<String> {
        address_key(&[&self.community, &self.building, &self.unit, &self.room])
    }

    /// The profile with its name and phone masked ([`mask_name`], [`mask_phone`]).
    pub fn masked(&self) -> Profile {
        Profile {
            name: self.name.as_deref().map(mask_name),
            phone: self.phone.as_deref().map(mask_phone),
            ..self.clone()
        }
    }
}

/// A phone number's canonical form: spaces and hyphens removed, then 3–20 digits with an
/// optional leading `+`. `None` when it is not one.
pub fn normalize_phone(s: &str) -> Option<String> {
    let p: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = p.strip_prefix('+').unwrap_or(&p);
    ((3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(p)
}

/// The digits of a phone number, last first.
pub fn phone_rev(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).rev().collect()
}

fn address_key(parts: &[&Option<String>]) -> Option<String> {
    let mut key = String::new();
    for p in parts {
        let Some(p) = p else { break };
        key.push_str(p);
        key.push(ADDRESS_SEP);
    }
    (!key.is_empty()).then_some(key)
}

/// A name masked for a list: its first character, then one `*` per other character (`张三丰`
/// → `张**`; a one-character name is `*`).
pub fn mask_name(name: &str) -> String {
    let n = name.chars().count();
    if n <= 1 {
        return "*".into();
    }
    let mut out: String = name.chars().take(1).collect();
    out.extend(std::iter::repeat_n('*', n - 1));
    out
}

/// A phone number masked for a list: an 11-digit or longer number keeps its first three and
/// last four digits (`13812345678` → `138****5678`), a shorter one only its last four (or
/// half, when shorter still).
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    let (head, tail) = if n >= 11 { (3, 4) } else { (0, 4.min(n / 2)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// The least string greater than every string that starts with `prefix` (in byte order, the
/// order of the `C` collation and of SQLite): the exclusive end of a prefix range. `None` when
/// there is none (a prefix of only U+10FFFF).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// What a search looks for: at least one of the criteria; customers match all that are given.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The account number, exact.
    pub account_no: Option<String>,
    /// The start of the name.
    pub name: Option<String>,
    /// The last digits of the phone number (at least 3).
    pub phone_suffix: Option<String>,
    /// The community, exact.
    pub community: Option<String>,
    /// The building, exact (needs the community).
    pub building: Option<String>,
    /// The unit, exact (needs the building).
    pub unit: Option<String>,
    /// The room, exact (needs the unit).
    pub room: Option<String>,
    /// At most this many (1 to [`MAX_RESULTS`]).
    pub limit: usize,
}

/// How a search reaches its customers: the index it ranges over, and the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Customers with this account number.
    Account(String),
    /// Customers whose phone's reversed digits are in `first..end` (start with the first).
    Phone(String, String),
    /// Customers whose name is in `first..end`.
    Name(String, String),
    /// Customers whose address key is in `first..end`.
    Address(String, String),
}

impl Search {
    /// Checks the criteria and chooses the index to range over (the most selective given:
    /// account number, phone, name, address). The error says what to fix.
    pub fn key(&self) -> Result<Key, String> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        for (what, v) in [
            ("account_no", &self.account_no),
            ("name", &self.name),
            ("phone", &self.phone_suffix),
            ("community", &self.community),
            ("building", &self.building),
            ("unit", &self.unit),
            ("room", &self.room),
        ] {
            if let Some(v) = given(v) {
                if v.chars().count() > MAX_FIELD_CHARS {
                    return Err(format!(
                        "{what} is longer than {MAX_FIELD_CHARS} characters"
                    ));
                }
                if v.chars().any(char::is_control) {
                    return Err(format!("{what} holds control characters"));
                }
            }
        }
        // One more than the most a caller may ask: the API asks for one more to tell whether
        // there are more (asking for 200 must not fail on the 201st).
        if self.limit == 0 || self.limit > MAX_RESULTS + 1 {
            return Err(format!("limit {}: give 1 to {MAX_RESULTS}", self.limit));
        }
        let phone = match given(&self.phone_suffix) {
            None => None,
            Some(p) => {
                let digits: String = p.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
                if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(
                        "phone: give at least the last 3 digits of the number, digits only".into(),
                    );
                }
                Some(phone_rev(&digits))
            }
        };
        let parts = [
            self.community.clone(),
            self.building.clone(),
            self.unit.clone(),
            self.room.clone(),
        ]
        .map(|p| given(&p).map(String::from));
        for (i, name) in ["building", "unit", "room"].iter().enumerate() {
            if parts[i + 1].is_some() && parts[i].is_none() {
                return Err(format!(
                    "{name} needs the address parts above it (community, building, unit)"
                ));
            }
        }
        let address = address_key(&[&parts[0], &parts[1], &parts[2], &parts[3]]);
        // Both ends bound the index range (an open end would let a search that finds fewer
        // than its limit read the index to its end).
        let range = |p: String| match prefix_end(&p) {
            Some(end) => Ok((p, end)),
            None => {
                Err("the search text cannot be searched: give letters, digits or words".to_string())
            }
        };
        if let Some(a) = given(&self.account_no) {
            Ok(Key::Account(a.to_string()))
        } else if let Some(p) = phone {
            let (p, e) = range(p)?;
            Ok(Key::Phone(p, e))
        } else if let Some(n) = given(&self.name) {
            let (p, e) = range(n.to_string())?;
            Ok(Key::Name(p, e))
        } else if let Some(a) = address {
            let (p, e) = range(a)?;
            Ok(Key::Address(p, e))
        } else {
            Err(
                "give at least one of account_no, name, phone (its last digits) and community \
                 (then building, unit, room)"
                    .into(),
            )
        }
    }

    /// Whether a profile meets every criterion (the store ranges over one index and checks the
    /// rest here).
    pub fn matches(&self, p: &Profile) -> bool {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        if let Some(a) = given(&self.account_no)
            && p.account_no.as_deref() != Some(a.as_str())
        {
            return false;
        }
        if let Some(n) = given(&self.name)
            && !p.name.as_deref().is_some_and(|x| x.starts_with(&n))
        {
            return false;
        }
        if let Some(s) = given(&self.phone_suffix) {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            if !p
                .phone
                .as_deref()
                .is_some_and(|x| phone_rev(x).starts_with(&phone_rev(&digits)))
            {
                return false;
            }
        }
        let wanted = [&self.community, &self.building, &self.unit, &self.room].map(given);
        let have = [&p.community, &p.building, &p.unit, &p.room];
        wanted
            .iter()
            .zip(have)
            .all(|(w, h)| w.as_ref().is_none_or(|w| h.as_deref() == Some(w.as_str())))
    }
}

/// One revision of a customer's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileVersion {
    /// The revision's id (later revisions have greater ids).
    pub id: i64,
    /// The customer.
    pub customer_id: String,
    /// The first date it is in force.
    pub valid_from: NaiveDate,
    /// The profile.
    pub profile: Profile,
    /// Why it was recorded.
    pub reason: String,
    /// Who recorded it.
    pub recorded_by: String,
    /// Where from: `import`, `api`, `cli`.
    pub source: String,
    /// When (UTC).
    pub recorded_at: String,
}

/// A profile to record.
#[derive(Debug, Clone)]
pub struct NewProfile {
    /// The customer.
    pub customer_id: String,
    /// The first date it is in force.
    pub valid_from: NaiveDate,
    /// The profile (normalized by [`Profile::normalized`] before it is stored).
    pub profile: Profile,
    /// Why (required: a correction says why).
    pub reason: String,
    /// Who.
    pub recorded_by: String,
    /// Where from.
    pub source: String,
}

/// A recorded profile, and whether it is a new revision.
#[derive(Debug, Clone)]
pub enum ProfileRecorded {
    /// A new revision.
    New(ProfileVersion),
    /// The revision in force for that `valid_from` already says exactly this: nothing changed.
    Same(ProfileVersion),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_what_a_cashier_confirms_with() {
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("李"), "*");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
        assert_eq!(mask_phone("88123456"), "****3456");
        assert_eq!(mask_phone("123"), "**3");
    }

    #[test]
    fn prefix_ranges_end_exactly() {
        assert_eq!(prefix_end("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_end("张").as_deref(), Some("弡"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }

    #[test]
    fn profiles_are_normalized_and_checked() {
        let p = Profile {
            phone: Some(" 138-1234 5678 ".into()),
            name: Some("  ".into()),
            community: Some("幸福小区".into()),
            building: Some("3".into()),
            ..Profile::default()
        }
        .normalized()
        .unwrap();
        assert_eq!(p.phone.as_deref(), Some("13812345678"));
        assert_eq!(p.name, None);
        assert_eq!(p.phone_rev().as_deref(), Some("87654321831"));
        assert_eq!(p.address_key().as_deref(), Some("幸福小区\u{1f}3\u{1f}"));
        let e = Profile {
            room: Some("501".into()),
            community: Some("x".into()),
            ..Profile::default()
        }
        .normalized()
        .unwrap_err();
        assert_eq!(e.0, "room");
        let e = Profile {
            name: Some("张\u{7}三".into()),
            ..Profile::default()
        }
        .normalized()
        .unwrap_err();
        assert!(!e.1.contains('张'), "a name is never quoted: {}", e.1);
        assert!(
            Profile {
                phone: Some("12ab".into()),
                ..Profile::default()
            }
            .normalized()
            .is_err()
        );
    }

    #[test]
    fn searches_choose_the_most_selective_index() {
        let s = |f: fn(&mut Search)| {
            let mut s = Search {
                limit: 20,
                ..Search::default()
            };
            f(&mut s);
            s.key()
        };
        assert_eq!(
            s(|s| {
                s.account_no = Some("A1".into());
                s.name = Some("张".into());
            }),
            Ok(Key::Account("A1".into()))
        );
        assert_eq!(
            s(|s| s.phone_suffix = Some("5678".into())),
            Ok(Key::Phone("8765".into(), "8766".into()))
        );
        assert_eq!(
            s(|s| {
                s.community = Some("幸福小区".into());
                s.building = Some("3".into());
            }),
            Ok(Key::Address(
                "幸福小区\u{1f}3\u{1f}".into(),
                "幸福小区\u{1f}3\u{20}".into()
            ))
        );
        assert!(s(|s| s.unit = Some("2".into())).is_err());
        assert!(s(|s| s.phone_suffix = Some("12".into())).is_err());
        assert!(s(|_| ()).is_err());
        let p = Profile {
            account_no: Some("A1".into()),
            name: Some("张三".into()),
            phone: Some("13812345678".into()),
            community: Some("幸福小区".into()),
            building: Some("3".into()),
            ..Profile::default()
        };
        let mut q = Search {
            name: Some("张".into()),
            phone_suffix: Some("5678".into()),
            community: Some("幸福小区".into()),
            limit: 1,
            ..Search::default()
        };
        assert!(q.matches(&p));
        q.building = Some("30".into());
        assert!(!q.matches(&p), "a building is matched whole");
    }
}

//! A ZIP read as hostile input, for the Alipay statement and the XLSX workbook alike.
//!
//! The entries are counted before anything is inflated ([`Archive::open`]), and every entry is
//! inflated through a [`Budget`]: what it inflates to is counted as it is read, whatever its
//! header declares, so a ZIP bomb costs at most the budget (plus one byte) of memory and the
//! time to inflate that much. A declared size over the budget is refused before reading, but a
//! small declared size is never believed.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use crate::{StatementError, text};

/// A ZIP entry's name: UTF-8 when it is, else GBK (Alipay writes GBK names without the UTF-8
/// flag), else shown with replacement characters (it is only shown, never used as a path).
pub(crate) fn entry_name(raw: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(raw) {
        return s.to_string();
    }
    let (name, _, _) = encoding_rs::GBK.decode(raw);
    name.into_owned()
}

pub(crate) fn zip_error(e: zip::result::ZipError) -> StatementError {
    StatementError::Zip {
        detail: e.to_string(),
    }
}

/// The most reserved for an entry from its declared size, before reading it.
const PREALLOCATE_AT_MOST: u64 = 64 << 20;

/// What may still be inflated: [`crate::Limits::max_uncompressed_bytes`] for one Alipay detail
/// file, or for all the parts of a workbook together.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget { limit, used: 0 }
    }

    fn left(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// How the refusal reads: the entry alone (`size` is over the limit by itself, or nothing
    /// was read before it), or with what was read before it.
    fn how(&self, size: u64, alone: &'static str, together: &'static str) -> &'static str {
        if self.used == 0 || size > self.limit {
            alone
        } else {
            together
        }
    }
}

/// An opened ZIP: its entries' names, in the central directory's order.
pub(crate) struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    /// Each entry's name and whether it is a directory.
    entries: Vec<(String, bool)>,
}

impl<'a> Archive<'a> {
    /// Opens the ZIP in `bytes` (a damaged or truncated one is [`StatementError::Zip`]) and
    /// refuses more than `max_entries` entries before reading any of them.
    pub(crate) fn open(bytes: &'a [u8], max_entries: usize) -> Result<Archive<'a>, StatementError> {
        let mut zip = ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
        if zip.len() > max_entries {
            return Err(StatementError::TooManyEntries {
                count: zip.len(),
                limit: max_entries,
            });
        }
        let mut entries = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let entry = zip.by_index_raw(i).map_err(zip_error)?;
            entries.push((entry_name(entry.name_raw()), entry.is_dir()));
        }
        Ok(Archive { zip, entries })
    }

    /// The entries' names and whether each is a directory, by index.
    pub(crate) fn entries(&self) -> &[(String, bool)] {
        &self.entries
    }

    /// Whether two entries have the same name (in a ZIP built to show one reader one entry and
    /// another reader the other).
    pub(crate) fn has_duplicate_names(&self) -> bool {
        self.zip.has_duplicate_names()
    }

    /// The entries' names for a message: quoted, escaped, joined.
    pub(crate) fn listed(&self) -> String {
        self.entries
            .iter()
            .map(|(name, _)| format!("\"{}\"", text::escape(name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Inflates entry `index` whole through `budget`: refused if its header declares more than
    /// is left, or as soon as it inflates to more.
    pub(crate) fn read(
        &mut self,
        index: usize,
        budget: &mut Budget,
    ) -> Result<Vec<u8>, StatementError> {
        let mut entry = self.zip.by_index(index).map_err(zip_error)?;
        let name = text::escape(&entry_name(entry.name_raw()));
        let left = budget.left();
        if entry.size() > left {
            return Err(StatementError::ZipBomb {
                name,
                how: budget.how(
                    entry.size(),
                    "declares",
                    "declares, with the parts read before it,",
                ),
                limit: budget.limit,
            });
        }
        // Inflating stops one byte past what is left, so whether the entry alone is over the
        // limit is not known: only what was read before says which.
        let how = budget.how(
            0,
            "inflates to",
            "inflates, with the parts read before it, to",
        );
        // The declared size (already within the budget) saves the copies of a growing buffer;
        // capped, so that a header that lies costs little.
        let capacity = entry.size().min(PREALLOCATE_AT_MOST) as usize;
        let out = read_bounded(&mut entry, left, name, capacity).map_err(|e| match e {
            StatementError::ZipBomb { name, .. } => StatementError::ZipBomb {
                name,
                how,
                limit: budget.limit,
            },
            other => other,
        })?;
        budget.used += out.len() as u64;
        Ok(out)
    }
}

/// Reads an entry whole, never more than `limit` bytes whatever its header declared (one byte
/// past the limit is read to tell "exactly the limit" from "more").
pub(crate) fn read_bounded(
    entry: impl Read,
    limit: u64,
    name: String,
    capacity: usize,
) -> Result<Vec<u8>, StatementError> {
    let mut out = Vec::with_capacity(capacity);
    entry
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| StatementError::Zip {
            detail: format!("reading \"{name}\": {e}"),
        })?;
    if out.len() as u64 > limit {
        return Err(StatementError::ZipBomb {
            name,
            how: "inflates to",
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_through_a_bound() {
        let e = read_bounded(std::io::repeat(b'0'), 1 << 20, "x".into(), 0).unwrap_err();
        assert!(
            matches!(
                e,
                StatementError::ZipBomb {
                    how: "inflates to",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            read_bounded(&[7u8; 10][..], 10, "x".into(), 64)
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn entry_names_in_gbk_are_read() {
        let (raw, _, _) = encoding_rs::GBK.encode("2088_20261201_业务明细.csv");
        assert!(std::str::from_utf8(&raw).is_err());
        assert_eq!(entry_name(&raw), "2088_20261201_业务明细.csv");
    }

    #[test]
    fn a_budget_is_shared_by_the_entries_read() {
        let zip = crate::fixtures::zip_of(&[("a", &[b'a'; 600][..]), ("b", &[b'b'; 600][..])]);
        let mut archive = Archive::open(&zip, 4).unwrap();
        let mut budget = Budget::new(1000);
        assert_eq!(archive.read(0, &mut budget).unwrap().len(), 600);
        let e = archive.read(1, &mut budget).unwrap_err();
        assert!(
            matches!(&e, StatementError::ZipBomb { limit: 1000, how, .. } if how.contains("before")),
            "{e}"
        );
        assert!(matches!(
            Archive::open(&zip, 1),
            Err(StatementError::TooManyEntries { count: 2, limit: 1 })
        ));
    }
}

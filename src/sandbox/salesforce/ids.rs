//! Salesforce record ids: 15-character case-sensitive ids, the 18-character case-safe form with its
//! checksum suffix, and the generator that hands out new ids per key prefix.

use std::fmt;

/// Characters used for the record-number part of generated ids, in ascending ASCII order so
/// that a fixed-width id sorts like the number it encodes.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Alphabet of the checksum suffix.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The case-sensitive 15-character identity of a record; the 18-character form is derived.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId([u8; 15]);

impl RecordId {
    /// Parses a 15- or 18-character id; an 18-character id must carry the right checksum.
    pub fn parse(text: &str) -> Option<RecordId> {
        let bytes = text.as_bytes();
        if bytes.len() != 15 && bytes.len() != 18 {
            return None;
        }
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut id = [0u8; 15];
        id.copy_from_slice(&bytes[..15]);
        if bytes.len() == 18 && !bytes[15..].eq_ignore_ascii_case(&checksum(&id)) {
            return None;
        }
        Some(RecordId(id))
    }

    /// The three-character key prefix naming the object type.
    pub fn prefix(&self) -> &str {
        // The bytes are validated ASCII alphanumerics.
        std::str::from_utf8(&self.0[..3]).unwrap_or("")
    }

    /// The 18-character form used in every response.
    pub fn to18(&self) -> String {
        let mut out = String::with_capacity(18);
        out.extend(self.0.iter().map(|b| *b as char));
        out.extend(checksum(&self.0).iter().map(|b| *b as char));
        out
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to18())
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to18())
    }
}

/// The three suffix characters: one per five-character chunk, each bit flagging an uppercase
/// letter at that position (first character = lowest bit).
fn checksum(id: &[u8; 15]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk, slot) in id.chunks(5).zip(out.iter_mut()) {
        let flags = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |acc, (p, _)| acc | (1 << p));
        *slot = SUFFIX[flags];
    }
    out
}

/// Converts a 15-character id to its 18-character form (returns `None` for anything else).
pub fn to18(id15: &str) -> Option<String> {
    if id15.len() != 15 {
        return None;
    }
    RecordId::parse(id15).map(|id| id.to18())
}

/// Hands out ids `<prefix><pod><0><record number>`: pod `5g` mirrors real instance ids.
pub fn make_id(prefix: &str, number: u64) -> Option<RecordId> {
    let prefix = prefix.as_bytes();
    if prefix.len() != 3 || !prefix.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut id = [b'0'; 15];
    id[..3].copy_from_slice(prefix);
    id[3] = b'5';
    id[4] = b'g';
    id[5] = b'0';
    let mut n = number;
    for slot in id[6..].iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    Some(RecordId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_documented_ids() {
        assert_eq!(to18("001R00000033I6A").as_deref(), Some("001R00000033I6AIAU"));
        assert_eq!(to18("00190000001pPvH").as_deref(), Some("00190000001pPvHAAU"));
        assert_eq!(to18("0065g00000Kq1AB").as_deref(), Some("0065g00000Kq1ABAAZ"));
        assert_eq!(to18("a0RE000000IJmcN").as_deref(), Some("a0RE000000IJmcNMAT"));
        assert_eq!(to18("aBcDEfgHIJKLMNO").as_deref(), Some("aBcDEfgHIJKLMNO025"));
        assert_eq!(to18("AbCdEfGhIjKlMnO").as_deref(), Some("AbCdEfGhIjKlMnOVKV"));
    }

    #[test]
    fn parse_rejects_bad_checksums_and_accepts_any_case_suffix() {
        assert!(RecordId::parse("0065g00000Kq1ABAAZ").is_some());
        assert!(RecordId::parse("0065g00000Kq1ABaaz").is_some());
        assert!(RecordId::parse("0065g00000Kq1ABAAA").is_none());
        assert!(RecordId::parse("0065g00000Kq1A").is_none());
        assert!(RecordId::parse("0065g00000Kq1A!").is_none());
    }

    #[test]
    fn generated_ids_sort_in_creation_order() {
        let a = make_id("006", 61).unwrap_or_else(|| unreachable!());
        let b = make_id("006", 62).unwrap_or_else(|| unreachable!());
        assert!(a < b);
        assert_eq!(a.prefix(), "006");
        assert!(RecordId::parse(&b.to18()).is_some());
    }
}

//! Text search of runs: turning the runs list's text filter into what each backend's trigram
//! index looks up, with nothing in the text read as query syntax.
//!
//! Both backends index `runs.search_text` by trigrams (SQLite: an FTS5 `trigram` table;
//! PostgreSQL: a `pg_trgm` GIN index), which finds any substring of 3 or more characters.
//! The searched text is lowercased like the stored one, so the search ignores case. The text
//! is built in the background once a run has finished (`Store::index_search`); a run not
//! indexed yet is searched in its inputs, record and action results themselves.

/// Characters in a trigram: texts shorter than this cannot be looked up in a trigram index.
pub(crate) const TRIGRAM_CHARS: usize = 3;

/// Whether a trigram index can look `text` up.
pub(crate) fn indexable(text: &str) -> bool {
    text.chars().nth(TRIGRAM_CHARS - 1).is_some()
}

/// An FTS5 query matching the rows whose text contains `text`: one quoted phrase, `"` doubled,
/// so operators, column filters and quotes in `text` are only characters to find.
pub(crate) fn fts5_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A `LIKE` pattern matching the texts that contain `text`: `%` and `_` in it are escaped
/// with `\` (PostgreSQL's escape character), as is `\` itself.
pub(crate) fn like_containing(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexable_counts_characters_not_bytes() {
        assert!(!indexable(""));
        assert!(!indexable("ab"));
        assert!(!indexable("éé"), "two characters in four bytes");
        assert!(indexable("abc"));
        assert!(indexable("éèê"));
    }

    #[test]
    fn fts5_phrase_quotes_and_doubles_quotes() {
        assert_eq!(fts5_phrase("acme"), r#""acme""#);
        assert_eq!(fts5_phrase(r#"say "hi" OR x*"#), r#""say ""hi"" OR x*""#);
    }

    #[test]
    fn like_containing_escapes_wildcards_and_the_escape() {
        assert_eq!(like_containing("acme"), "%acme%");
        assert_eq!(like_containing(r"50%_a\b"), r"%50\%\_a\\b%");
    }
}

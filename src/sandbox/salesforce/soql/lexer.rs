//! SOQL tokens with their byte offsets, so errors can point at the offending column.

use jiff::civil::Date;

use super::SoqlError;
use crate::sandbox::salesforce::value::parse_datetime;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or keyword (keywords are recognised by the parser, case-insensitively).
    Ident(String),
    /// A quoted string with escapes resolved; `like_escapes` keeps `\%`/`\_` for LIKE.
    Str(String),
    /// A number literal.
    Num(f64),
    /// `yyyy-MM-dd`.
    Date(Date),
    /// An ISO datetime, in epoch milliseconds.
    DateTime(i64),
    /// `,`
    Comma,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `.`
    Dot,
    /// `:`
    Colon,
    /// `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    /// End of input.
    End,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self, source: &str, start: usize, end: usize) -> String {
        match self {
            Tok::End => "<EOF>".to_string(),
            _ => source.get(start..end).unwrap_or("").to_string(),
        }
    }
}

/// A token and where it sits in the query.
#[derive(Debug, Clone)]
pub struct Spanned {
    /// The token.
    pub tok: Tok,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// Splits a query into tokens.
pub fn lex(source: &str) -> Result<Vec<Spanned>, SoqlError> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            b',' => single(&mut i, Tok::Comma),
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b'.' => single(&mut i, Tok::Dot),
            b':' => single(&mut i, Tok::Colon),
            b'=' => single(&mut i, Tok::Op("=")),
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op("!=")
            }
            b'<' | b'>' => lex_angle(bytes, &mut i),
            b'\'' | b'"' => lex_string(source, &mut i)?,
            b'0'..=b'9' | b'-' | b'+' => lex_number_or_date(source, &mut i)?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(source[start..i].to_string())
            }
            _ => {
                let ch = source[start..].chars().next().unwrap_or('?');
                return Err(SoqlError::malformed(start, format!("unexpected token: '{ch}'")));
            }
        };
        out.push(Spanned { tok, start, end: i });
    }
    out.push(Spanned { tok: Tok::End, start: bytes.len(), end: bytes.len() });
    Ok(out)
}

fn single(i: &mut usize, tok: Tok) -> Tok {
    *i += 1;
    tok
}

fn lex_angle(bytes: &[u8], i: &mut usize) -> Tok {
    let c = bytes[*i];
    let next = bytes.get(*i + 1).copied();
    *i += 1;
    match (c, next) {
        (b'<', Some(b'=')) => {
            *i += 1;
            Tok::Op("<=")
        }
        (b'<', Some(b'>')) => {
            *i += 1;
            Tok::Op("!=")
        }
        (b'>', Some(b'=')) => {
            *i += 1;
            Tok::Op(">=")
        }
        (b'<', _) => Tok::Op("<"),
        _ => Tok::Op(">"),
    }
}

/// Quoted strings with SOQL's escapes; `\%` and `\_` are kept escaped for LIKE patterns.
fn lex_string(source: &str, i: &mut usize) -> Result<Tok, SoqlError> {
    let start = *i;
    let quote = source.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = source[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        let at = start + 1 + off;
        match ch {
            c if c == quote => {
                *i = at + 1;
                return Ok(Tok::Str(out));
            }
            '\\' => {
                let Some((_, esc)) = chars.next() else { break };
                match esc {
                    'n' | 'N' => out.push('\n'),
                    'r' | 'R' => out.push('\r'),
                    't' | 'T' => out.push('\t'),
                    'b' | 'B' => out.push('\u{8}'),
                    'f' | 'F' => out.push('\u{c}'),
                    '\'' | '"' | '\\' => {
                        if esc == '\\' {
                            out.push_str("\\\\");
                        } else {
                            out.push(esc);
                        }
                    }
                    '%' | '_' => {
                        out.push('\\');
                        out.push(esc);
                    }
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                        let code = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        let Some(code) = code else {
                            return Err(SoqlError::malformed(
                                at,
                                "Invalid unicode escape sequence".to_string(),
                            ));
                        };
                        out.push(code);
                    }
                    _ => {
                        return Err(SoqlError::malformed(
                            at,
                            "Invalid string literal. Illegal character sequence '\\".to_string()
                                + &esc.to_string()
                                + "' in string literal.",
                        ));
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(SoqlError::malformed(start, "unexpected token: <EOF>".to_string()))
}

fn lex_number_or_date(source: &str, i: &mut usize) -> Result<Tok, SoqlError> {
    let bytes = source.as_bytes();
    let start = *i;
    // Dates and datetimes are unquoted literals such as 2024-05-20 or 2024-05-20T20:49:32Z.
    if bytes.len() >= start + 10
        && bytes[start..start + 4].iter().all(u8::is_ascii_digit)
        && bytes[start + 4] == b'-'
    {
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'-' | b':' | b'.' | b'+'))
        {
            end += 1;
        }
        let text = &source[start..end];
        *i = end;
        if text.len() == 10 {
            return text.parse::<Date>().map(Tok::Date).map_err(|_| {
                SoqlError::malformed(
                    start,
                    format!("line 1:{start} no viable alternative at character '{text}'"),
                )
            });
        }
        return parse_datetime(text)
            .map(Tok::DateTime)
            .ok_or_else(|| SoqlError::malformed(start, format!("unexpected token: '{text}'")));
    }
    let mut end = start + 1;
    while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
        end += 1;
    }
    let text = &source[start..end];
    *i = end;
    text.parse::<f64>()
        .map(Tok::Num)
        .map_err(|_| SoqlError::malformed(start, format!("unexpected token: '{text}'")))
}

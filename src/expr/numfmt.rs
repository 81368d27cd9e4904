//! .NET numeric format strings (`formatNumber`) and the culture data they and the date
//! functions need: separators, currency, day and month names for a few common locales.

/// What a locale changes in formatted numbers and dates.
pub(crate) struct Culture {
    /// Thousands separator.
    pub group: &'static str,
    /// Decimal separator.
    pub decimal: &'static str,
    /// Currency symbol.
    pub currency: &'static str,
    /// Whether the currency symbol follows the number (`17,35 kr`) or precedes it (`$17.35`).
    pub currency_after: bool,
    /// Day names, Sunday first.
    pub days: [&'static str; 7],
    /// Month names, January first.
    pub months: [&'static str; 12],
    /// Short date pattern (`d`).
    pub short_date: &'static str,
}

const EN_DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const EN_US: Culture = Culture {
    group: ",",
    decimal: ".",
    currency: "$",
    currency_after: false,
    days: EN_DAYS,
    months: EN_MONTHS,
    short_date: "M/d/yyyy",
};

const EN_GB: Culture = Culture { currency: "£", short_date: "dd/MM/yyyy", ..EN_US };

const FR_FR: Culture = Culture {
    group: "\u{202f}",
    decimal: ",",
    currency: "€",
    currency_after: true,
    days: ["dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    short_date: "dd/MM/yyyy",
};

const ES_ES: Culture = Culture {
    group: ".",
    decimal: ",",
    currency: "€",
    currency_after: true,
    days: ["domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"],
    months: [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    short_date: "dd/MM/yyyy",
};

const DE_DE: Culture = Culture {
    group: ".",
    decimal: ",",
    currency: "€",
    currency_after: true,
    days: ["Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"],
    months: [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
    short_date: "dd.MM.yyyy",
};

const IS_IS: Culture = Culture {
    group: ".",
    decimal: ",",
    currency: "kr",
    currency_after: true,
    days: [
        "sunnudagur",
        "mánudagur",
        "þriðjudagur",
        "miðvikudagur",
        "fimmtudagur",
        "föstudagur",
        "laugardagur",
    ],
    months: [
        "janúar",
        "febrúar",
        "mars",
        "apríl",
        "maí",
        "júní",
        "júlí",
        "ágúst",
        "september",
        "október",
        "nóvember",
        "desember",
    ],
    short_date: "d.M.yyyy",
};

/// The culture of a locale name (`en-US`, `fr-fr`, `de`…); `None` for an unknown one.
pub(crate) fn culture(locale: &str) -> Option<&'static Culture> {
    let lower = locale.to_ascii_lowercase();
    let (lang, region) = lower.split_once('-').unwrap_or((lower.as_str(), ""));
    Some(match (lang, region) {
        ("" | "en", "" | "us") => &EN_US,
        ("en", _) => &EN_GB,
        ("fr", _) => &FR_FR,
        ("es", _) => &ES_ES,
        ("de", _) => &DE_DE,
        ("is", _) => &IS_IS,
        _ => return None,
    })
}

/// The culture of `locale`, or an error naming the supported ones.
pub(crate) fn culture_or_err(locale: &str) -> Result<&'static Culture, String> {
    culture(locale).ok_or_else(|| {
        format!("unsupported locale '{locale}': use en-US, en-GB, fr-FR, es-ES, de-DE or is-IS")
    })
}

/// Whether the locale writes `1.234,5` (used when parsing numbers).
pub(crate) fn comma_decimal(locale: &str) -> bool {
    culture(locale).is_some_and(|c| c.decimal == ",")
}

/// Formats `n` with a .NET standard (`C2`, `N0`, `P1`, `F3`, `D5`, `X`, `E2`, `G`) or custom
/// (`#,##0.00`) numeric format string.
pub(crate) fn format_number(n: f64, format: &str, locale: &str) -> Result<String, String> {
    let c = culture_or_err(locale)?;
    let mut chars = format.chars();
    if let (Some(letter), rest) = (chars.next(), chars.as_str()) {
        if letter.is_ascii_alphabetic() && rest.chars().all(|d| d.is_ascii_digit()) && rest.len() <= 2 {
            let precision = if rest.is_empty() { None } else { rest.parse::<usize>().ok() };
            return standard(n, letter, precision, c);
        }
    }
    Ok(custom(n, format, c))
}

fn standard(n: f64, letter: char, precision: Option<usize>, c: &Culture) -> Result<String, String> {
    Ok(match letter {
        'C' | 'c' => {
            let body = grouped(n.abs(), precision.unwrap_or(2), c);
            let body = if c.currency_after {
                format!("{body}\u{a0}{}", c.currency)
            } else {
                format!("{}{body}", c.currency)
            };
            let body = body.replace('\u{a0}', " ");
            if n < 0.0 { format!("-{body}") } else { body }
        }
        'N' | 'n' => sign(n, grouped(n.abs(), precision.unwrap_or(2), c)),
        'F' | 'f' => sign(n, fixed(n.abs(), precision.unwrap_or(2), c)),
        'P' | 'p' => {
            let body = grouped(n.abs() * 100.0, precision.unwrap_or(2), c);
            let body = if c.decimal == "," { format!("{body} %") } else { format!("{body}%") };
            sign(n, body)
        }
        'D' | 'd' => {
            if n.fract() != 0.0 {
                return Err("format 'D' needs an integer".into());
            }
            let digits = format!("{:0width$}", n.abs() as i64, width = precision.unwrap_or(0));
            sign(n, digits)
        }
        'X' | 'x' => {
            if n.fract() != 0.0 {
                return Err("format 'X' needs an integer".into());
            }
            let hex = format!("{:0width$X}", n as i64, width = precision.unwrap_or(0));
            if letter == 'x' { hex.to_lowercase() } else { hex }
        }
        'E' | 'e' => {
            let p = precision.unwrap_or(6);
            let s = format!("{:.p$e}", n.abs());
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let e = if letter == 'E' { 'E' } else { 'e' };
            let sign_e = if exp < 0 { '-' } else { '+' };
            sign(n, format!("{}{e}{sign_e}{:03}", mantissa.replace('.', c.decimal), exp.abs()))
        }
        'G' | 'g' | 'R' | 'r' => {
            let s = super::values::float_text(n);
            s.replace('.', c.decimal)
        }
        other => {
            return Err(format!(
                "unknown numeric format '{other}': use C, D, E, F, G, N, P, X or a custom pattern like '#,##0.00'"
            ));
        }
    })
}

fn sign(n: f64, body: String) -> String {
    if n < 0.0 && body.chars().any(|c| c.is_ascii_digit() && c != '0') { format!("-{body}") } else { body }
}

/// `n` rounded to `decimals` places (half away from zero, as .NET), as integer and fraction digits.
fn digits(n: f64, decimals: usize) -> (String, String) {
    let scale = 10f64.powi(decimals as i32);
    let rounded = (n * scale).round() / scale;
    let s = format!("{rounded:.decimals$}");
    match s.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (s, String::new()),
    }
}

fn fixed(n: f64, decimals: usize, c: &Culture) -> String {
    let (i, f) = digits(n, decimals);
    if f.is_empty() { i } else { format!("{i}{}{f}", c.decimal) }
}

fn group_digits(int: &str, sep: &str) -> String {
    let mut out = String::new();
    let len = int.len();
    for (idx, ch) in int.chars().enumerate() {
        if idx > 0 && (len - idx) % 3 == 0 {
            out.push_str(sep);
        }
        out.push(ch);
    }
    out
}

fn grouped(n: f64, decimals: usize, c: &Culture) -> String {
    let (i, f) = digits(n, decimals);
    let i = group_digits(&i, c.group);
    if f.is_empty() { i } else { format!("{i}{}{f}", c.decimal) }
}

/// A custom pattern: `0` and `#` placeholders, `.`, `,` grouping, `%`, quoted literals, and a
/// `;` negative section. Literal text before and after the digits is kept.
fn custom(n: f64, format: &str, c: &Culture) -> String {
    let sections: Vec<&str> = format.split(';').collect();
    let (pattern, n, explicit_negative) = match sections.as_slice() {
        [pos, neg, ..] if n < 0.0 && !neg.is_empty() => (*neg, -n, true),
        [pos, ..] => (*pos, n, false),
        [] => (format, n, false),
    };
    let is_placeholder = |ch: char| matches!(ch, '0' | '#' | '.' | ',');
    let start = pattern.find(['0', '#']).unwrap_or(pattern.len());
    let end = pattern.rfind(['0', '#']).map_or(start, |e| e + 1);
    let (prefix, body, suffix) = (&pattern[..start], &pattern[start..end], &pattern[end..]);
    let body: String = body.chars().filter(|ch| is_placeholder(*ch)).collect();
    let (int_pat, frac_pat) = body.split_once('.').unwrap_or((&body, ""));
    let percent = pattern.contains('%');
    let value = if percent { n.abs() * 100.0 } else { n.abs() };
    let max_frac = frac_pat.chars().filter(|ch| *ch == '0' || *ch == '#').count();
    let min_frac = frac_pat.chars().filter(|ch| *ch == '0').count();
    let min_int = int_pat.chars().filter(|ch| *ch == '0').count();
    let (mut i, mut f) = digits(value, max_frac);
    while f.len() > min_frac && f.ends_with('0') {
        f.pop();
    }
    if i == "0" && min_int == 0 {
        i.clear();
    }
    while i.len() < min_int {
        i.insert(0, '0');
    }
    if int_pat.contains(',') {
        i = group_digits(&i, c.group);
    }
    let number = if f.is_empty() { i } else { format!("{i}{}{f}", c.decimal) };
    let literal = |s: &str| s.replace(['\'', '"'], "");
    let minus = if n < 0.0 && !explicit_negative && number.chars().any(|d| d.is_ascii_digit() && d != '0') {
        "-"
    } else {
        ""
    };
    format!("{minus}{}{number}{}", literal(prefix), literal(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        assert_eq!(format_number(1234567890.0, "#,##0.00", "en-US").unwrap(), "1,234,567,890.00");
        assert_eq!(format_number(1234567890.0, "#,##0.00", "is-IS").unwrap(), "1.234.567.890,00");
        assert_eq!(format_number(17.35, "C2", "en-US").unwrap(), "$17.35");
        assert_eq!(format_number(17.35, "C2", "is-IS").unwrap(), "17,35 kr");
    }

    #[test]
    fn other_formats() {
        assert_eq!(format_number(0.1234, "P1", "en-US").unwrap(), "12.3%");
        assert_eq!(format_number(-1234.5, "N1", "en-US").unwrap(), "-1,234.5");
        assert_eq!(format_number(42.0, "D5", "en-US").unwrap(), "00042");
        assert_eq!(format_number(255.0, "X", "en-US").unwrap(), "FF");
        assert_eq!(format_number(1.5, "0.###", "en-US").unwrap(), "1.5");
        assert!(format_number(1.0, "C", "xx-XX").is_err());
    }
}

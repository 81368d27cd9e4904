//! Secrets: `secret('NAME')` reads the environment or a secrets file, and every value revealed
//! is redacted from whatever coflow prints or stores.
//!
//! The secrets file is named by `COFLOW_SECRETS_FILE`. It holds either `KEY=value` lines
//! (`#` starts a comment) or a YAML mapping of names to values, and must not be readable by
//! group or others. Values shorter than [`MIN_REDACTED_LEN`] characters are still returned but
//! not redacted, since masking every occurrence of a one- or two-letter string would garble
//! every log line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, RwLock};

use serde_json::Value;

/// The environment variable naming the secrets file.
pub const SECRETS_FILE_ENV: &str = "COFLOW_SECRETS_FILE";

/// What replaces a secret value in output.
pub const MASK: &str = "***";

/// Shorter values are not redacted (see the module documentation).
pub const MIN_REDACTED_LEN: usize = 4;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither the environment nor the secrets file has the name.
    #[error("secret '{name}' is not set: export {name}=… or add it to the file named by {SECRETS_FILE_ENV}")]
    NotFound {
        /// The secret's name.
        name: String,
    },
    /// The secrets file is readable by group or others.
    #[error("secrets file {} is readable by group or others: run `chmod 600 {}`", path.display(), path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
    },
    /// The secrets file cannot be read.
    #[error("cannot read secrets file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The secrets file is neither `KEY=value` lines nor a YAML mapping.
    #[error("secrets file {} line {line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (1-based) where reading failed.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Every secret value revealed so far, longest first so that a longer secret is masked whole.
static REVEALED: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Reads the secret `name` (environment first, then the secrets file) and registers its value
/// for redaction.
pub fn secret(name: &str) -> Result<String, SecretError> {
    let value = match std::env::var(name) {
        Ok(v) => v,
        Err(_) => from_file(name)?,
    };
    register(&value);
    Ok(value)
}

fn from_file(name: &str) -> Result<String, SecretError> {
    let not_found = || SecretError::NotFound { name: name.to_string() };
    let Some(path) = std::env::var_os(SECRETS_FILE_ENV) else {
        return Err(not_found());
    };
    let entries = read_file(Path::new(&path))?;
    for value in entries.values() {
        register(value);
    }
    entries.get(name).cloned().ok_or_else(not_found)
}

/// Reads a secrets file after checking its permissions.
pub fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SecretError> {
    check_permissions(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|source| SecretError::Io { path: path.to_path_buf(), source })?;
    parse(&text).map_err(|(line, message)| SecretError::Parse { path: path.to_path_buf(), line, message })
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta =
        std::fs::metadata(path).map_err(|source| SecretError::Io { path: path.to_path_buf(), source })?;
    if meta.permissions().mode() & 0o044 != 0 {
        return Err(SecretError::TooOpen { path: path.to_path_buf() });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), SecretError> {
    Ok(())
}

/// Parses `KEY=value` lines, or else a YAML mapping. Errors carry a 1-based line.
fn parse(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let is_env_line =
        |l: &str| l.split_once('=').is_some_and(|(k, _)| is_key(k.trim().trim_start_matches("export ")));
    if lines.iter().all(|(_, l)| is_env_line(l)) {
        return Ok(lines
            .iter()
            .filter_map(|(_, l)| l.split_once('='))
            .map(|(k, v)| {
                (k.trim().trim_start_matches("export ").trim().to_string(), unquote(v.trim()).to_string())
            })
            .collect());
    }
    let yaml: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        (line, format!("write `KEY=value` lines or a YAML mapping of names to values ({e})"))
    })?;
    yaml.into_iter()
        .map(|(k, v)| match v {
            serde_yaml::Value::String(s) => Ok((k, s)),
            serde_yaml::Value::Number(n) => Ok((k, n.to_string())),
            serde_yaml::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err((0, format!("the value of '{k}' must be text"))),
        })
        .collect()
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Registers a value to be redacted from now on (connectors use it for tokens they obtain).
pub fn register(value: &str) {
    if value.chars().count() < MIN_REDACTED_LEN {
        return;
    }
    let Ok(mut list) = REVEALED.write() else { return };
    if list.iter().any(|v| v == value) {
        return;
    }
    list.push(value.to_string());
    list.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// Whether any secret value has been revealed, that is whether redacting can change anything.
pub fn any_revealed() -> bool {
    REVEALED.read().map_or(true, |list| !list.is_empty())
}

/// Replaces every revealed secret value inside `value` with `***`.
pub fn redact_value(value: &mut Value) {
    let Ok(list) = REVEALED.read() else { return };
    if list.is_empty() {
        return;
    }
    redact_in(value, &list);
}

fn redact_in(value: &mut Value, list: &[String]) {
    match value {
        Value::String(s) if list.iter().any(|secret| s.contains(secret.as_str())) => *s = mask(s, list),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_in(v, list)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_in(v, list)),
        _ => {}
    }
}

fn mask(text: &str, list: &[String]) -> String {
    list.iter().fold(text.to_string(), |acc, secret| acc.replace(secret.as_str(), MASK))
}

/// Replaces every revealed secret value inside `text` with `***`.
pub fn redact(text: &str) -> String {
    match REVEALED.read() {
        Ok(list) if list.iter().any(|s| text.contains(s.as_str())) => mask(text, &list),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_lines_and_yaml() {
        let env = parse("# comment\nA=1\nexport B = 'two'\n").unwrap();
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some("two"));
        let yaml = parse("A: one\nB: 2\n").unwrap();
        assert_eq!(yaml.get("B").map(String::as_str), Some("2"));
        assert!(parse("A: [1, 2]\n").is_err());
    }

    #[test]
    fn longer_secrets_are_masked_whole() {
        register("abcd-secret-unit");
        register("abcd-secret-unit-longer");
        assert_eq!(redact("x abcd-secret-unit-longer y"), "x *** y");
    }
}

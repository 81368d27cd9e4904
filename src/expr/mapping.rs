//! Field mappings: `flows/mappings/*.yaml`, one target field per line, applied by `mapping()`.
//!
//! ```yaml
//! target: Opportunity
//! fields:
//!   Name: "{{ source.name }}"
//!   StageName: "{{ lookup('stage', source.status) }}"
//!   Description: null        # always sent as null: clears the field
//! lookups:
//!   stage: {New: Prospecting, Active: Qualification}
//! ```
//!
//! Each field is a template over `source` (the value passed to `mapping()`), compiled once when
//! the file is loaded. **Null fields**: a field whose template renders to `null` is left out of
//! the result, so a Salesforce update does not wipe a field the source simply lacks; a field
//! written as a literal `null` in the file is kept as `null`, which is how a mapping clears a
//! field on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Object, Value as JinjaValue};
use serde_json::{Map, Value};

use super::json_view::JsonView;
use super::native::Inputs;
use super::references::{Reads, reads_of};
use super::template::{
    ExprError, LazyContext, Scope, ScopeHandle, Template, compile, context, context_with_handle,
};
use super::values::{from_json, from_json_owned};

/// The current mapping is passed in the render context under this name, for `lookup()`.
pub(crate) const MAPPING_KEY: &str = "__mapping";

/// The mapping files a flow uses, by file name without extension.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    by_name: BTreeMap<String, Arc<Mapping>>,
}

/// One compiled mapping file.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// The target object, e.g. `Opportunity`.
    pub target: Option<String>,
    /// The name `mapping()` calls it by (the file name without extension).
    pub name: String,
    /// The file it came from, when loaded from disk.
    pub path: Option<PathBuf>,
    fields: Vec<Field>,
    lookups: BTreeMap<String, BTreeMap<String, Value>>,
    /// What the fields that are not computed natively read of `source`: the rest of the source
    /// is not handed to the template engine for them.
    engine_reads: Reads,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    template: Template,
    /// Written as a literal `null`: kept in the output (see the module documentation).
    explicit_null: bool,
    /// Every expression of the field has a native form (see [`Native`](super::native::Native)),
    /// which falls back to the engine only when a property is missing, say: the engine then
    /// sees the whole source, so that its error is the one it would give anyway.
    native: bool,
}

/// A mapping file that cannot be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file or folder cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML or has the wrong shape.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A field's template does not compile.
    #[error("{}:{line}: field '{field}': {source}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// 1-based line of the field (0 when unknown).
        line: usize,
        /// The target field.
        field: String,
        /// The template error.
        source: ExprError,
    },
    /// No mapping file has that name.
    #[error("no mapping file '{name}' in {}: expected {}", dir.display(), dir.join(format!("{name}.yaml")).display())]
    NotFound {
        /// The name asked for.
        name: String,
        /// The folder searched.
        dir: PathBuf,
    },
    /// Several files failed; each error is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<MappingError>),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    target: Option<String>,
    fields: serde_yaml::Mapping,
    #[serde(default)]
    lookups: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Mappings {
    /// The mapping called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Mapping>> {
        self.by_name.get(name)
    }

    /// The names of every mapping.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Adds (or replaces) a mapping under its name.
    pub fn insert(&mut self, mapping: Mapping) {
        self.by_name.insert(mapping.name.clone(), Arc::new(mapping));
    }

    /// Loads every `*.yaml` / `*.yml` file of `dir`, reporting every broken file at once.
    /// A missing folder gives no mappings.
    pub fn load_dir(dir: &Path) -> Result<Mappings, MappingError> {
        let mut out = Mappings::default();
        if !dir.exists() {
            return Ok(out);
        }
        let entries =
            std::fs::read_dir(dir).map_err(|source| MappingError::Io { path: dir.to_path_buf(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for path in paths {
            match Mapping::load(&path) {
                Ok(m) => out.insert(m),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(out),
            1 => Err(errors.remove(0)),
            _ => Err(MappingError::Several(errors)),
        }
    }

    /// Loads the one mapping `name` from `dir` (`<dir>/<name>.yaml` or `.yml`).
    pub fn load_named(dir: &Path, name: &str) -> Result<Mapping, MappingError> {
        for ext in ["yaml", "yml"] {
            let path = dir.join(format!("{name}.{ext}"));
            if path.exists() {
                return Mapping::load(&path);
            }
        }
        Err(MappingError::NotFound { name: name.to_string(), dir: dir.to_path_buf() })
    }
}

/// The current mapping as a minijinja object, for `lookup()`.
#[derive(Debug)]
pub(crate) struct MappingHandle(pub(crate) Arc<Mapping>);

impl Object for MappingHandle {}

impl Mapping {
    /// Loads and compiles one mapping file; its name is the file name without extension.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MappingError::Io { path: path.to_path_buf(), source })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Mapping::parse(&name, &text, path)
    }

    /// Compiles a mapping from its YAML text; `path` only labels errors.
    pub fn parse(name: &str, text: &str, path: &Path) -> Result<Mapping, MappingError> {
        let syntax =
            |line: usize, message: String| MappingError::Syntax { path: path.to_path_buf(), line, message };
        let file: MappingFile = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            syntax(line, format!("{e} (a mapping file has `target`, `fields` and `lookups`)"))
        })?;
        let mut fields = Vec::with_capacity(file.fields.len());
        for (key, value) in &file.fields {
            let Some(field) = key.as_str() else {
                return Err(syntax(0, format!("field names must be text, found {key:?}")));
            };
            let line = line_of(text, field);
            let json: Value =
                serde_json::to_value(value).map_err(|e| syntax(line, format!("field '{field}': {e}")))?;
            let template = compile(&json).map_err(|source| MappingError::Field {
                path: path.to_path_buf(),
                line,
                field: field.to_string(),
                source,
            })?;
            let native = template.is_native();
            fields.push(Field { name: field.to_string(), template, explicit_null: json.is_null(), native });
        }
        let mut engine_reads = Reads::default();
        for field in fields.iter().filter(|f| !f.native) {
            reads_of(&field.template, "source", &mut engine_reads);
        }
        Ok(Mapping {
            target: file.target,
            name: name.to_string(),
            path: Some(path.to_path_buf()),
            fields,
            lookups: file.lookups,
            engine_reads,
        })
    }

    /// The target field names, in file order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// A value from a lookup table: `Err` when the table does not exist, `None` for a missing key.
    pub fn lookup(&self, table: &str, key: &str) -> Result<Option<&Value>, String> {
        let Some(t) = self.lookups.get(table) else {
            let known: Vec<&str> = self.lookups.keys().map(String::as_str).collect();
            return Err(format!(
                "mapping '{}' has no lookup table '{table}' (known: {})",
                self.name,
                known.join(", ")
            ));
        };
        Ok(t.get(key))
    }

    /// Applies the mapping to `source`: the object of rendered fields. `scope` gives the
    /// fields access to the run (`variables()`, `parameters()`…).
    pub fn render(
        self: &Arc<Self>,
        source: &Value,
        scope: Option<&Arc<dyn Scope>>,
    ) -> Result<Value, ExprError> {
        let inputs = Inputs { source: Some(source), mapping: Some(self), scope };
        self.render_fields(&inputs, |whole| {
            // Native fields fall back to the engine only when a property is missing, and then
            // see the whole source, as every field did before native evaluation.
            let source =
                if whole { from_json(source) } else { from_json_owned(self.engine_reads.keep(source)) };
            let extra =
                [("source", source), (MAPPING_KEY, JinjaValue::from_object(MappingHandle(self.clone())))];
            context(scope.cloned(), &extra)
        })
    }

    /// Applies the mapping inside a render already in progress (the `mapping()` function).
    pub(crate) fn render_jinja(
        self: &Arc<Self>,
        source: JinjaValue,
        scope: Option<JinjaValue>,
    ) -> Result<Value, ExprError> {
        let run = scope.as_ref().and_then(|h| h.downcast_object_ref::<ScopeHandle>()).map(|h| &h.scope);
        let json = source.downcast_object_ref::<JsonView>().map(|view| view.json());
        let inputs = Inputs { source: json, mapping: Some(self), scope: run };
        self.render_fields(&inputs, |_| {
            let extra = [
                ("source", source.clone()),
                (MAPPING_KEY, JinjaValue::from_object(MappingHandle(self.clone()))),
            ];
            context_with_handle(scope.clone(), &extra)
        })
    }

    /// Renders every field: natively where the field allows it, else by the template engine,
    /// in the context `make_context` builds the first time one is needed: with the whole
    /// source (`true`) for a native field, else with what `engine_reads` keeps of it.
    fn render_fields(
        &self,
        inputs: &Inputs<'_>,
        make_context: impl Fn(bool) -> JinjaValue,
    ) -> Result<Value, ExprError> {
        let mut out = Map::with_capacity(self.fields.len());
        let whole = LazyContext::new(|| make_context(true));
        let trimmed = LazyContext::new(|| make_context(false));
        for field in &self.fields {
            let ctx = if field.native { &whole } else { &trimmed };
            let value = field.template.render_with(inputs, ctx).map_err(|e| ExprError {
                message: format!("mapping '{}' field '{}': {}", self.name, field.name, e.message),
                source_text: e.source_text,
            })?;
            if value.is_null() && !field.explicit_null {
                continue;
            }
            out.insert(field.name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}

/// The 1-based line where `field:` is written, or 0.
fn line_of(text: &str, field: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches(['"', '\'']);
            t.strip_prefix(field)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    /// Renders every field through the template engine over the whole source, the way a
    /// mapping without direct reads or a trimmed source would.
    fn through_the_engine(mapping: &Arc<Mapping>, source: &Value) -> Result<Value, ExprError> {
        let extra = [
            ("source", from_json(source)),
            (MAPPING_KEY, JinjaValue::from_object(MappingHandle(mapping.clone()))),
        ];
        let ctx = context(None, &extra);
        let mut out = Map::new();
        for field in &mapping.fields {
            let value = field.template.render_in(&ctx).map_err(|e| ExprError {
                message: format!("mapping '{}' field '{}': {}", mapping.name, field.name, e.message),
                source_text: e.source_text,
            })?;
            if !value.is_null() || field.explicit_null {
                out.insert(field.name.clone(), value);
            }
        }
        Ok(Value::Object(out))
    }

    fn mapping(fields: &str) -> Arc<Mapping> {
        let text = format!("fields:\n{fields}lookups:\n  t:\n    a: A\n");
        Arc::new(Mapping::parse("m", &text, Path::new("m.yaml")).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn direct_reads_and_a_trimmed_source_render_as_the_engine_does() {
        let m = mapping(concat!(
            "  A: '{{ source.a }}'\n",
            "  B: '{{ source.b.c }}'\n",
            "  C: 'x {{ source.b.c }} {{ source.f }} {{ source.n }} {{ source.l }}'\n",
            "  D: '{{ first(source.l).k }}'\n",
            "  E: '{{ lookup(\"t\", source.a) }}'\n",
            "  F: '{{ source.n }}'\n",
            "  G: null\n",
            "  H: '{{ formatDateTime(source.d, \"yyyy-MM-dd\") }}'\n",
            "  I: '{{ lookup(\"t\", source.a ~ \"/\" ~ source.s, \"none\") }}'\n",
            "  J: '{{ opt(source, \"b\", \"c\") }} {{ opt(source, \"b\", \"z\") }} {{ opt(source, \"n\", \"q\") }} {{ opt(source, \"l\", 0, \"k\") }}'\n",
            "  K: '{{ coalesce(opt(source, \"z\"), \"default\") }}'\n",
            "  L: '{{ lookup(\"t\", source.s, \"\") or none }}'\n",
            "  M: '{{ source.l | length }}'\n",
            "  N: '{{ source.r | upper }}'\n",
        ));
        let engine_only: Vec<&str> = m.fields.iter().filter(|f| !f.native).map(|f| f.name.as_str()).collect();
        assert_eq!(engine_only, ["M", "N"]);
        let kept = m.engine_reads.keep(&json!({"a": 1, "b": 2, "l": 3, "r": 4, "z": 5}));
        assert_eq!(kept, json!({"l": 3, "r": 4}));
        let source = json!({
            "a": "a", "b": {"c": 1.0}, "f": true, "n": null, "l": [{"k": [1]}], "s": "x",
            "d": "2026-11-25T10:00:00Z", "r": "up", "other": {"big": 1}
        });
        let rendered = m.render(&source, None).map_err(|e| e.message);
        assert_eq!(rendered, through_the_engine(&m, &source).map_err(|e| e.message));
        assert_eq!(
            rendered,
            Ok(json!({
                "A": "a", "B": 1.0, "C": "x 1 True  [{\"k\":[1]}]", "D": [1], "E": "A", "G": null,
                "H": "2026-11-25", "I": "none", "J": "1   [1]", "K": "default", "M": 1, "N": "UP"
            }))
        );
    }

    #[test]
    fn what_only_the_engine_can_decide_it_decides() {
        let m = mapping(concat!(
            "  A: '{{ source.a ~ source.b.c }}'\n",
            "  B: '{{ formatDateTime(source.a, \"yyyy\") }}'\n",
            "  C: '{{ lookup(\"t\", source.a) }}'\n",
            "  D: '{{ opt(source, \"a\", \"x\") }}'\n",
        ));
        assert!(m.fields.iter().all(|f| f.native));
        for source in [
            json!({"a": "a", "b": {"c": 1}}),
            json!({"a": "not a date", "b": {"c": 1}}),
            json!({"a": "missing", "b": {"c": 1}}),
            json!({"a": {"x": 2}, "b": {"c": 1}}),
        ] {
            let rendered = m.render(&source, None).map_err(|e| e.message);
            assert_eq!(rendered, through_the_engine(&m, &source).map_err(|e| e.message), "{source}");
        }
    }

    #[test]
    fn a_missing_property_fails_as_the_engine_says() {
        let m = mapping("  A: 'n={{ source.b.missing }}'\n");
        let source = json!({"b": {"c": 1}});
        let direct = m.render(&source, None).map(|_| ()).map_err(|e| e.message);
        assert_eq!(direct, through_the_engine(&m, &source).map(|_| ()).map_err(|e| e.message));
        assert!(direct.is_err_and(|message| message.contains("missing")));
    }

    #[test]
    fn a_source_used_whole_is_passed_whole() {
        let m = mapping("  A: '{{ opt(source, \"x\", \"y\") + 0 }}'\n  B: '{{ source.z }}'\n");
        assert_eq!(m.engine_reads, Reads::Whole);
        let source = json!({"x": {"y": 2}, "z": 3});
        assert_eq!(m.render(&source, None).map_err(|e| e.message), Ok(json!({"A": 2, "B": 3})));
    }

    #[test]
    fn finds_field_lines() {
        let text = "target: X\nfields:\n  Name: a\n  \"Amount\": b\n";
        assert_eq!(line_of(text, "Name"), 3);
        assert_eq!(line_of(text, "Amount"), 4);
        assert_eq!(line_of(text, "Other"), 0);
    }
}

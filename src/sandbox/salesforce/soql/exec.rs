//! Plans a parsed query against the schema (resolving names, typing literals) and runs it.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde_json::{Map, Value, json};

use super::{Cond, Literal, Op, Path, Query, SelectItem, SoqlError, unescape};
use crate::sandbox::salesforce::ids::RecordId;
use crate::sandbox::salesforce::records::attributes;
use crate::sandbox::salesforce::schema::{FieldType, ObjectDef, Schema};
use crate::sandbox::salesforce::store::{Db, Record};
use crate::sandbox::salesforce::value::{Val, date_start_ms, today};

/// A query ready to run: names resolved to indexes, literals typed.
#[derive(Debug)]
pub struct Plan {
    object: usize,
    count_only: bool,
    projection: Vec<Proj>,
    condition: Option<CCond>,
    order: Vec<(Resolved, bool, bool)>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// For subqueries: the child's lookup field pointing at the parent.
    link_field: usize,
}

#[derive(Debug)]
enum Proj {
    Field(usize),
    Parent { name: String, field: usize, inner: Vec<Proj> },
    Child { name: String, plan: Box<Plan> },
}

/// A field reached through zero or more parent lookups.
#[derive(Debug, Clone)]
struct Resolved {
    hops: Vec<usize>,
    field: usize,
    name: String,
    ftype: FieldType,
}

#[derive(Debug)]
enum CCond {
    And(Vec<CCond>),
    Or(Vec<CCond>),
    Not(Box<CCond>),
    Cmp { path: Resolved, op: Op, rhs: Rhs },
}

#[derive(Debug)]
enum Rhs {
    Null,
    One(Val),
    Range(i64, i64),
    List(Vec<Val>),
    Like(Vec<char>),
    Sets(Vec<Vec<String>>),
}

/// Rows of a query: the total and the rendered records.
#[derive(Debug)]
pub struct Rows {
    /// Number of matching rows (the count for `COUNT()`).
    pub total: usize,
    /// Rendered records (empty for `COUNT()`).
    pub records: Vec<Value>,
}

/// Resolves a parsed query against the schema.
pub fn plan(schema: &Schema, query: &Query) -> Result<Plan, SoqlError> {
    let object = schema.object_index(&query.from.text).ok_or_else(|| SoqlError {
        code: "INVALID_TYPE",
        message: format!(
            "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
            query.from.text
        ),
        pos: query.from.pos,
    })?;
    plan_for(schema, query, object, 0)
}

fn plan_for(schema: &Schema, query: &Query, object: usize, link_field: usize) -> Result<Plan, SoqlError> {
    let def = &schema.objects[object];
    let count_only = query.select.iter().any(|s| matches!(s, SelectItem::Count));
    if count_only && query.select.len() > 1 {
        return Err(SoqlError::malformed(
            query.from.pos,
            "COUNT() must be the only element in the SELECT list.".to_string(),
        ));
    }
    let mut projection = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for item in &query.select {
        match item {
            SelectItem::Count => {}
            SelectItem::Field(path) => {
                let resolved = resolve(schema, object, path)?;
                let key = path_key(schema, object, &resolved);
                if seen.contains(&key) {
                    return Err(SoqlError::malformed(
                        path.pos,
                        format!("duplicate field selected: {}", path.parts.join(".")),
                    ));
                }
                seen.push(key);
                add_projection(schema, object, &mut projection, &resolved);
            }
            SelectItem::Subquery(sub) => {
                let rel = def.child_relationship(&sub.from.text).ok_or_else(|| SoqlError {
                    code: "INVALID_TYPE",
                    message: format!(
                        "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                        sub.from.text
                    ),
                    pos: sub.from.pos,
                })?;
                let plan = plan_for(schema, sub, rel.child, rel.field)?;
                projection.push(Proj::Child { name: rel.name.clone(), plan: Box::new(plan) });
            }
        }
    }
    let condition = query.condition.as_ref().map(|c| compile_cond(schema, object, c)).transpose()?;
    let order = query
        .order
        .iter()
        .map(|k| resolve(schema, object, &k.field).map(|r| (r, k.ascending, k.nulls_first)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        object,
        count_only,
        projection,
        condition,
        order,
        limit: query.limit,
        offset: query.offset,
        link_field,
    })
}

fn path_key(schema: &Schema, object: usize, resolved: &Resolved) -> String {
    let mut current = object;
    let mut key = String::new();
    for hop in &resolved.hops {
        let field = &schema.objects[current].fields[*hop];
        key.push_str(&field.name);
        key.push('.');
        current = target_of(schema, current, *hop).unwrap_or(current);
    }
    key.push_str(&resolved.name);
    key
}

fn target_of(schema: &Schema, object: usize, field: usize) -> Option<usize> {
    schema.objects[object].fields[field].reference_to.first().and_then(|t| schema.object_index(t))
}

fn resolve(schema: &Schema, object: usize, path: &Path) -> Result<Resolved, SoqlError> {
    let mut parts: &[String] = &path.parts;
    let mut current = object;
    let def = &schema.objects[object];
    if parts.len() > 1
        && parts[0].eq_ignore_ascii_case(&def.name)
        && def.relationship_field(&parts[0]).is_none()
    {
        parts = &parts[1..];
    }
    let mut hops = Vec::new();
    for rel in &parts[..parts.len() - 1] {
        let current_def = &schema.objects[current];
        let field = current_def.relationship_field(rel).ok_or_else(|| SoqlError {
            code: "INVALID_FIELD",
            message: format!(
                "Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
            ),
            pos: path.pos,
        })?;
        hops.push(field);
        current = target_of(schema, current, field).unwrap_or(current);
    }
    let last = &parts[parts.len() - 1];
    let final_def = &schema.objects[current];
    let field = final_def.field_index(last).ok_or_else(|| SoqlError {
        code: "INVALID_FIELD",
        message: format!(
            "No such column '{last}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            final_def.name
        ),
        pos: path.pos,
    })?;
    let f = &final_def.fields[field];
    Ok(Resolved { hops, field, name: f.name.clone(), ftype: f.ftype })
}

fn add_projection(schema: &Schema, object: usize, projs: &mut Vec<Proj>, resolved: &Resolved) {
    let Some((first, rest)) = resolved.hops.split_first() else {
        projs.push(Proj::Field(resolved.field));
        return;
    };
    let def = &schema.objects[object];
    let target = target_of(schema, object, *first).unwrap_or(object);
    let inner_path = Resolved { hops: rest.to_vec(), ..resolved.clone() };
    let existing = projs.iter_mut().find_map(|p| match p {
        Proj::Parent { field, inner, .. } if field == first => Some(inner),
        _ => None,
    });
    if let Some(inner) = existing {
        add_projection(schema, target, inner, &inner_path);
        return;
    }
    let mut inner = Vec::new();
    add_projection(schema, target, &mut inner, &inner_path);
    let name = def.fields[*first].relationship_name.clone().unwrap_or_default();
    projs.push(Proj::Parent { name, field: *first, inner });
}

fn compile_cond(schema: &Schema, object: usize, cond: &Cond) -> Result<CCond, SoqlError> {
    Ok(match cond {
        Cond::And(parts) => {
            CCond::And(parts.iter().map(|c| compile_cond(schema, object, c)).collect::<Result<_, _>>()?)
        }
        Cond::Or(parts) => {
            CCond::Or(parts.iter().map(|c| compile_cond(schema, object, c)).collect::<Result<_, _>>()?)
        }
        Cond::Not(inner) => CCond::Not(Box::new(compile_cond(schema, object, inner)?)),
        Cond::Cmp { field, op, value, value_pos } => {
            let path = resolve(schema, object, field)?;
            let rhs = compile_rhs(&path, *op, value, *value_pos)?;
            CCond::Cmp { path, op: *op, rhs }
        }
    })
}

fn compile_rhs(path: &Resolved, op: Op, value: &Literal, pos: usize) -> Result<Rhs, SoqlError> {
    let ftype = path.ftype;
    match op {
        Op::Includes | Op::Excludes => {
            if ftype != FieldType::MultiPicklist {
                return Err(SoqlError {
                    code: "INVALID_QUERY_FILTER_OPERATOR",
                    message: "includes or excludes operator only valid on multipicklist field".to_string(),
                    pos,
                });
            }
            let Literal::List(items) = value else {
                return Err(SoqlError::malformed(pos, "expecting a list".to_string()));
            };
            let sets = items
                .iter()
                .map(|i| match i {
                    Literal::Str(s) => Ok(split_set(&unescape(s))),
                    _ => Err(type_error(path, pos)),
                })
                .collect::<Result<_, _>>()?;
            return Ok(Rhs::Sets(sets));
        }
        Op::In | Op::NotIn => {
            let Literal::List(items) = value else {
                return Err(SoqlError::malformed(pos, "expecting a list".to_string()));
            };
            let vals = items.iter().map(|i| typed(path, i, pos)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Rhs::List(
                vals.into_iter()
                    .filter_map(|v| match v {
                        Rhs::One(v) => Some(v),
                        _ => None,
                    })
                    .collect(),
            ));
        }
        Op::Like => {
            if !ftype.is_text() {
                return Err(SoqlError {
                    code: "INVALID_QUERY_FILTER_OPERATOR",
                    message: format!("invalid operator on {} field: LIKE", ftype.name()),
                    pos,
                });
            }
            let Literal::Str(s) = value else { return Err(type_error(path, pos)) };
            return Ok(Rhs::Like(s.to_lowercase().chars().collect()));
        }
        _ => {}
    }
    typed(path, value, pos)
}

fn typed(path: &Resolved, value: &Literal, pos: usize) -> Result<Rhs, SoqlError> {
    let ftype = path.ftype;
    match (value, ftype) {
        (Literal::Null, _) => Ok(Rhs::Null),
        (Literal::Str(s), FieldType::Id | FieldType::Reference) => {
            let text = unescape(s);
            RecordId::parse(&text).map(|id| Rhs::One(Val::Str(Arc::from(id.to18())))).ok_or_else(|| {
                SoqlError {
                    code: "INVALID_QUERY_FILTER_OPERATOR",
                    message: format!("invalid ID field: {text}"),
                    pos,
                }
            })
        }
        (Literal::Str(s), t) if t.is_text() => Ok(Rhs::One(Val::Str(Arc::from(unescape(s))))),
        (Literal::Bool(b), FieldType::Boolean) => Ok(Rhs::One(Val::Bool(*b))),
        (Literal::Num(n), t) if t.is_number() => Ok(Rhs::One(Val::Num(*n))),
        (Literal::Date(d), FieldType::Date) => Ok(Rhs::One(Val::Date(*d))),
        (Literal::DateTime(ms), FieldType::DateTime) => Ok(Rhs::One(Val::DateTime(*ms))),
        (Literal::Relative(word, n), FieldType::Date | FieldType::DateTime) => {
            let (start, end) = relative_range(word, *n, today())
                .ok_or_else(|| SoqlError::malformed(pos, format!("unexpected token: '{word}'")))?;
            Ok(Rhs::Range(date_start_ms(start), date_start_ms(end)))
        }
        _ => Err(type_error(path, pos)),
    }
}

fn type_error(path: &Resolved, pos: usize) -> SoqlError {
    let (kind, quoting) = match path.ftype {
        t if t.is_text() => ("string", "should be enclosed in quotes"),
        FieldType::Boolean => ("boolean", "should not be enclosed in quotes"),
        FieldType::Date => ("date", "should not be enclosed in quotes"),
        FieldType::DateTime => ("dateTime", "should not be enclosed in quotes"),
        FieldType::Int => ("int", "should not be enclosed in quotes"),
        _ => ("double", "should not be enclosed in quotes"),
    };
    SoqlError {
        code: "INVALID_FIELD",
        message: format!(
            "value of filter criterion for field '{}' must be of type {kind} and {quoting}",
            path.name
        ),
        pos,
    }
}

/// The [start, end) dates a relative literal covers, with weeks starting on Sunday.
fn relative_range(word: &str, n: Option<i64>, today: Date) -> Option<(Date, Date)> {
    let n = n.unwrap_or(0);
    let day = |d: i64| today.checked_add(d.days()).ok();
    let week_start = today.checked_sub((today.weekday().to_sunday_zero_offset() as i64).days()).ok()?;
    let week = |w: i64| week_start.checked_add((7 * w).days()).ok();
    let month_start = today.first_of_month();
    let month = |m: i64| month_start.checked_add(m.months()).ok();
    let quarter_start = Date::new(today.year(), ((today.month() - 1) / 3) * 3 + 1, 1).ok()?;
    let quarter = |q: i64| quarter_start.checked_add((3 * q).months()).ok();
    let year_start = Date::new(today.year(), 1, 1).ok()?;
    let year = |y: i64| year_start.checked_add(y.years()).ok();
    let _ = Weekday::Sunday;
    Some(match word {
        "TODAY" => (day(0)?, day(1)?),
        "YESTERDAY" => (day(-1)?, day(0)?),
        "TOMORROW" => (day(1)?, day(2)?),
        "LAST_N_DAYS" => (day(-n)?, day(1)?),
        "LAST_90_DAYS" => (day(-90)?, day(1)?),
        "NEXT_N_DAYS" => (day(1)?, day(1 + n)?),
        "NEXT_90_DAYS" => (day(1)?, day(91)?),
        "N_DAYS_AGO" => (day(-n)?, day(1 - n)?),
        "THIS_WEEK" => (week(0)?, week(1)?),
        "LAST_WEEK" => (week(-1)?, week(0)?),
        "NEXT_WEEK" => (week(1)?, week(2)?),
        "LAST_N_WEEKS" => (week(-n)?, week(0)?),
        "NEXT_N_WEEKS" => (week(1)?, week(1 + n)?),
        "THIS_MONTH" => (month(0)?, month(1)?),
        "LAST_MONTH" => (month(-1)?, month(0)?),
        "NEXT_MONTH" => (month(1)?, month(2)?),
        "LAST_N_MONTHS" => (month(-n)?, month(0)?),
        "NEXT_N_MONTHS" => (month(1)?, month(1 + n)?),
        "THIS_QUARTER" => (quarter(0)?, quarter(1)?),
        "LAST_QUARTER" => (quarter(-1)?, quarter(0)?),
        "NEXT_QUARTER" => (quarter(1)?, quarter(2)?),
        "THIS_YEAR" => (year(0)?, year(1)?),
        "LAST_YEAR" => (year(-1)?, year(0)?),
        "NEXT_YEAR" => (year(1)?, year(2)?),
        "LAST_N_YEARS" => (year(-n)?, year(0)?),
        "NEXT_N_YEARS" => (year(1)?, year(1 + n)?),
        _ => return None,
    })
}

fn split_set(text: &str) -> Vec<String> {
    let mut parts: Vec<String> =
        text.split(';').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
    parts.sort();
    parts
}

/// Runs a plan: filter, sort, offset/limit, render. `all_rows` includes deleted records.
pub fn run(db: &Db, plan: &Plan, all_rows: bool, version: &str) -> Rows {
    let table = &db.tables[plan.object];
    let mut rows: Vec<(&RecordId, &Record)> = table
        .records
        .iter()
        .filter(|(_, r)| all_rows || r.deleted_at.is_none())
        .filter(|(_, r)| plan.condition.as_ref().is_none_or(|c| eval(db, plan.object, r, c)))
        .collect();
    sort_rows(db, plan, &mut rows);
    let total_before_paging = rows.len();
    let rows = page(rows, plan.offset, plan.limit);
    if plan.count_only {
        let total =
            if plan.limit.is_some() || plan.offset.is_some() { rows.len() } else { total_before_paging };
        return Rows { total, records: Vec::new() };
    }
    let children = child_groups(db, plan, all_rows);
    let records: Vec<Value> = rows
        .iter()
        .map(|(id, r)| render_row(db, plan.object, id, r, &plan.projection, &children, version))
        .collect();
    Rows { total: records.len(), records }
}

fn page<T>(rows: Vec<T>, offset: Option<u64>, limit: Option<u64>) -> Vec<T> {
    let offset = offset.unwrap_or(0) as usize;
    let limit = limit.map_or(usize::MAX, |l| l as usize);
    rows.into_iter().skip(offset).take(limit).collect()
}

fn sort_rows(db: &Db, plan: &Plan, rows: &mut [(&RecordId, &Record)]) {
    if plan.order.is_empty() {
        return;
    }
    let keyed: Vec<Vec<Val>> = rows
        .iter()
        .map(|(_, r)| plan.order.iter().map(|(path, _, _)| value_at(db, plan.object, r, path)).collect())
        .collect();
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|a, b| {
        for (k, (path, ascending, nulls_first)) in plan.order.iter().enumerate() {
            let (x, y) = (&keyed[*a][k], &keyed[*b][k]);
            let ord = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if *nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if *nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = compare(path.ftype, x, y);
                    if *ascending { o } else { o.reverse() }
                }
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
    let sorted: Vec<(&RecordId, &Record)> = idx.iter().map(|i| rows[*i]).collect();
    rows.copy_from_slice(&sorted);
}

/// Ids compare case-sensitively; other text without case.
fn compare(ftype: FieldType, x: &Val, y: &Val) -> Ordering {
    if matches!(ftype, FieldType::Id | FieldType::Reference) {
        return x.as_str().cmp(&y.as_str());
    }
    x.compare(y).unwrap_or(Ordering::Equal)
}

/// Follows parent lookups and reads the final field.
fn value_at(db: &Db, object: usize, record: &Record, path: &Resolved) -> Val {
    let mut current = object;
    let mut rec = record;
    for hop in &path.hops {
        let Some(id) = rec.values[*hop].as_str().and_then(RecordId::parse) else { return Val::Null };
        let Some((obj, parent)) = db.find_live(&id) else { return Val::Null };
        current = obj;
        rec = parent;
    }
    let def = &db.schema.objects[current];
    // A polymorphic lookup may land on another object than planned: read the field by name.
    match def.fields.get(path.field) {
        Some(f) if f.name == path.name => rec.values[path.field].clone(),
        _ => def.field_index(&path.name).map_or(Val::Null, |i| rec.values[i].clone()),
    }
}

fn eval(db: &Db, object: usize, record: &Record, cond: &CCond) -> bool {
    match cond {
        CCond::And(parts) => parts.iter().all(|c| eval(db, object, record, c)),
        CCond::Or(parts) => parts.iter().any(|c| eval(db, object, record, c)),
        CCond::Not(inner) => !eval(db, object, record, inner),
        CCond::Cmp { path, op, rhs } => {
            let value = value_at(db, object, record, path);
            compare_op(path.ftype, &value, *op, rhs)
        }
    }
}

fn compare_op(ftype: FieldType, value: &Val, op: Op, rhs: &Rhs) -> bool {
    let negative = matches!(op, Op::Ne | Op::NotIn | Op::Excludes);
    if let Rhs::Null = rhs {
        return match op {
            Op::Eq => value.is_null(),
            Op::Ne => !value.is_null(),
            _ => false,
        };
    }
    // SOQL returns rows with a null field for negative comparisons against a value.
    if value.is_null() {
        return negative;
    }
    let eq = |v: &Val| {
        if ftype == FieldType::MultiPicklist {
            return split_set(value.as_str().unwrap_or("")) == split_set(v.as_str().unwrap_or(""));
        }
        compare(ftype, value, v) == Ordering::Equal
    };
    match (op, rhs) {
        (Op::Eq, Rhs::One(v)) => eq(v),
        (Op::Ne, Rhs::One(v)) => !eq(v),
        (Op::Lt, Rhs::One(v)) => compare(ftype, value, v) == Ordering::Less,
        (Op::Le, Rhs::One(v)) => compare(ftype, value, v) != Ordering::Greater,
        (Op::Gt, Rhs::One(v)) => compare(ftype, value, v) == Ordering::Greater,
        (Op::Ge, Rhs::One(v)) => compare(ftype, value, v) != Ordering::Less,
        (_, Rhs::Range(start, end)) => {
            let ms = match value {
                Val::Date(d) => date_start_ms(*d),
                Val::DateTime(ms) => *ms,
                _ => return false,
            };
            match op {
                Op::Eq => ms >= *start && ms < *end,
                Op::Ne => ms < *start || ms >= *end,
                Op::Lt => ms < *start,
                Op::Le => ms < *end,
                Op::Gt => ms >= *end,
                Op::Ge => ms >= *start,
                _ => false,
            }
        }
        (Op::In, Rhs::List(list)) => list.iter().any(eq),
        (Op::NotIn, Rhs::List(list)) => !list.iter().any(eq),
        (Op::Like, Rhs::Like(pattern)) => {
            let text: Vec<char> = value.as_str().unwrap_or("").to_lowercase().chars().collect();
            like(&text, pattern)
        }
        (Op::Includes | Op::Excludes, Rhs::Sets(sets)) => {
            let have = split_set(value.as_str().unwrap_or(""));
            let any = sets.iter().any(|set| set.iter().all(|v| have.contains(v)));
            if op == Op::Includes { any } else { !any }
        }
        _ => false,
    }
}

/// `%` matches any run, `_` one character, `\%`/`\_`/`\\` the character itself.
fn like(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%', rest)) => (0..=text.len()).any(|i| like(&text[i..], rest)),
        Some(('_', rest)) => !text.is_empty() && like(&text[1..], rest),
        Some(('\\', rest)) if !rest.is_empty() => {
            text.first() == rest.first() && like(&text[1..], &rest[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && like(&text[1..], rest),
    }
}

type ChildGroups = Vec<HashMap<Arc<str>, Vec<RecordId>>>;

/// For each child subquery, matching child ids grouped by parent id (computed once per query).
fn child_groups(db: &Db, plan: &Plan, all_rows: bool) -> ChildGroups {
    plan.projection
        .iter()
        .filter_map(|p| match p {
            Proj::Child { plan: child, .. } => Some(child),
            _ => None,
        })
        .map(|child| {
            let mut groups: HashMap<Arc<str>, Vec<RecordId>> = HashMap::new();
            for (id, r) in &db.tables[child.object].records {
                if (!all_rows && r.deleted_at.is_some())
                    || child.condition.as_ref().is_some_and(|c| !eval(db, child.object, r, c))
                {
                    continue;
                }
                if let Val::Str(parent) = &r.values[child.link_field] {
                    groups.entry(parent.clone()).or_default().push(*id);
                }
            }
            groups
        })
        .collect()
}

fn render_row(
    db: &Db,
    object: usize,
    id: &RecordId,
    record: &Record,
    projs: &[Proj],
    children: &ChildGroups,
    version: &str,
) -> Value {
    let def = &db.schema.objects[object];
    let mut map = Map::with_capacity(projs.len() + 1);
    map.insert("attributes".into(), attributes(def, id, version));
    let mut child_index = 0;
    for proj in projs {
        match proj {
            Proj::Field(i) => {
                let f = &def.fields[*i];
                map.insert(f.name.clone(), record.values[*i].to_json(f.ftype == FieldType::Int));
            }
            Proj::Parent { name, field, inner, .. } => {
                let parent = record.values[*field]
                    .as_str()
                    .and_then(RecordId::parse)
                    .and_then(|pid| db.find_live(&pid).map(|(o, r)| (pid, o, r)));
                let value = match parent {
                    Some((pid, o, r)) => render_row(db, o, &pid, r, inner, &Vec::new(), version),
                    None => Value::Null,
                };
                map.insert(name.clone(), value);
            }
            Proj::Child { name, plan } => {
                let value = render_children(db, record, def, plan, children.get(child_index), version);
                child_index += 1;
                map.insert(name.clone(), value);
            }
        }
    }
    Value::Object(map)
}

fn render_children(
    db: &Db,
    record: &Record,
    def: &ObjectDef,
    plan: &Plan,
    groups: Option<&HashMap<Arc<str>, Vec<RecordId>>>,
    version: &str,
) -> Value {
    let _ = def;
    let Some(parent_id) = record.values[0].as_str() else { return Value::Null };
    let Some(ids) = groups.and_then(|g| g.get(parent_id)) else { return Value::Null };
    let table = &db.tables[plan.object];
    let mut rows: Vec<(&RecordId, &Record)> =
        ids.iter().filter_map(|id| table.records.get_key_value(id)).collect();
    sort_rows(db, plan, &mut rows);
    let rows = page(rows, plan.offset, plan.limit);
    if rows.is_empty() {
        return Value::Null;
    }
    let records: Vec<Value> = rows
        .iter()
        .map(|(id, r)| render_row(db, plan.object, id, r, &plan.projection, &Vec::new(), version))
        .collect();
    json!({"totalSize": records.len(), "done": true, "records": records})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_handles_wildcards_and_escapes() {
        let text: Vec<char> = "50% off_now".chars().collect();
        let pat = |p: &str| p.chars().collect::<Vec<char>>();
        assert!(like(&text, &pat("50%")));
        assert!(like(&text, &pat("%off\\_now")));
        assert!(like(&text, &pat("50\\% off%")));
        assert!(!like(&text, &pat("50\\%off%")));
        assert!(like(&text, &pat("5_% off_now")));
    }

    #[test]
    fn relative_ranges_cover_the_documented_days() {
        let today = Date::new(2024, 5, 15).unwrap_or_default();
        let (start, end) = relative_range("LAST_N_DAYS", Some(7), today).unwrap_or_default();
        assert_eq!(
            (start.to_string(), end.to_string()),
            ("2024-05-08".to_string(), "2024-05-16".to_string())
        );
        let (start, end) = relative_range("THIS_QUARTER", None, today).unwrap_or_default();
        assert_eq!(
            (start.to_string(), end.to_string()),
            ("2024-04-01".to_string(), "2024-07-01".to_string())
        );
        assert!(relative_range("SOMEDAY", None, today).is_none());
    }
}

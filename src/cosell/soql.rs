//! Which objects and fields a SOQL query names, read from a flow's query template.
//!
//! This is not a SOQL parser: it reads `SELECT ... FROM ...` blocks, their subqueries and the
//! names in `WHERE` / `ORDER BY`, which is what the flows write. Template expressions
//! (`{{ ... }}`) stand for values and are skipped, so `WHERE Id = {{ soql_quote(x) }}` names
//! only `Id`.

/// One name a query uses, relative to the query's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// A child relationship the name sits under (`Microsoft_Solutions__r` of a subquery).
    pub child: Option<String>,
    /// Parent relationships walked first (`Account` in `Account.Name`).
    pub parents: Vec<String>,
    /// The field.
    pub field: String,
}

/// What one query names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryNames {
    /// The object after the outer `FROM`.
    pub object: String,
    /// Fields, relative to `object`.
    pub names: Vec<Named>,
    /// Child relationships of `object` its subqueries read (also when they select nothing).
    pub children: Vec<String>,
    /// Queries nested in conditions (`Id IN (SELECT ...)`), about other objects.
    pub nested: Vec<QueryNames>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Punct(char),
    /// A literal or a template expression: a value, never a name.
    Value,
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "null",
    "true",
    "false",
    "limit",
    "offset",
    "order",
    "by",
    "asc",
    "desc",
    "nulls",
    "first",
    "last",
    "group",
    "having",
    "in",
    "includes",
    "excludes",
    "like",
    "with",
    "using",
    "scope",
    "for",
    "view",
    "reference",
    "update",
    "tracking",
    "viewstat",
    "typeof",
    "when",
    "then",
    "else",
    "end",
    "rollup",
    "cube",
    "all",
    "rows",
    "data",
    "category",
    "at",
    "above",
    "below",
    "above_or_below",
    "security_enforced",
    "today",
    "yesterday",
    "tomorrow",
];

/// Reads the names of a query; `None` when there is no `SELECT ... FROM object`.
pub fn names(soql: &str) -> Option<QueryNames> {
    let tokens = tokenize(soql);
    let mut at = 0;
    let query = query(&tokens, &mut at)?;
    Some(query)
}

/// Reads the names in a condition on `object` (a poll trigger's `where`).
pub fn condition_names(object: &str, condition: &str) -> Vec<Named> {
    names(&format!("SELECT Id FROM {object} WHERE {condition}"))
        .map(|q| q.names.into_iter().filter(|n| !(n.field == "Id" && n.parents.is_empty())).collect())
        .unwrap_or_default()
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '{' && chars.get(i + 1) == Some(&'{') {
            // A template expression stands for a value; skip to its `}}`.
            i += 2;
            while i < chars.len() && !(chars[i] == '}' && chars.get(i + 1) == Some(&'}')) {
                i += 1;
            }
            i += 2;
            tokens.push(Token::Value);
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            tokens.push(Token::Value);
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // Numbers, dates and date-times (2024-05-21T08:05:00.000Z).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ".:+-".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Value);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

fn is_word(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

fn is_punct(token: Option<&Token>, c: char) -> bool {
    token == Some(&Token::Punct(c))
}

/// A relative date literal (`LAST_N_DAYS`, `THIS_QUARTER`) or a keyword: not a name.
fn is_reserved(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    KEYWORDS.contains(&lower.as_str())
        || ["last_", "next_", "this_"].iter().any(|prefix| lower.starts_with(prefix))
}

fn path(word: &str, child: Option<&str>) -> Named {
    let mut parts: Vec<String> = word.split('.').filter(|p| !p.is_empty()).map(str::to_string).collect();
    let field = parts.pop().unwrap_or_default();
    Named { child: child.map(str::to_string), parents: parts, field }
}

/// `SELECT items FROM object [rest]`, stopping at the `)` that closes a subquery.
fn query(tokens: &[Token], at: &mut usize) -> Option<QueryNames> {
    if !is_word(tokens.get(*at), "select") {
        return None;
    }
    *at += 1;
    let mut selected = Vec::new();
    let mut subqueries = Vec::new();
    while *at < tokens.len() && !is_word(tokens.get(*at), "from") {
        match &tokens[*at] {
            Token::Punct('(') if is_word(tokens.get(*at + 1), "select") => {
                *at += 1;
                if let Some(sub) = query(tokens, at) {
                    subqueries.push(sub);
                }
            }
            // A function (COUNT, toLabel, FORMAT) is not a name; its arguments are.
            Token::Word(_) if is_punct(tokens.get(*at + 1), '(') => {}
            Token::Word(word) if !is_reserved(word) => selected.push(path(word, None)),
            _ => {}
        }
        *at += 1;
    }
    *at += 1;
    let Some(Token::Word(object)) = tokens.get(*at) else { return None };
    let mut result = QueryNames { object: object.clone(), ..QueryNames::default() };
    *at += 1;
    result.names = selected;
    for sub in subqueries {
        // A subquery in the select list reads a child relationship of this object.
        result.children.push(sub.object.clone());
        let child = sub.object.clone();
        result.names.extend(sub.names.into_iter().map(|n| Named { child: Some(child.clone()), ..n }));
        result.nested.extend(sub.nested);
    }
    rest(tokens, at, &mut result);
    Some(result)
}

/// The clauses after `FROM object`, up to the end or the `)` closing this query.
fn rest(tokens: &[Token], at: &mut usize, result: &mut QueryNames) {
    let mut depth = 0usize;
    while let Some(token) = tokens.get(*at) {
        match token {
            Token::Punct('(') if is_word(tokens.get(*at + 1), "select") => {
                *at += 1;
                if let Some(nested) = query(tokens, at) {
                    result.nested.push(nested);
                }
            }
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => return,
            Token::Punct(')') => depth -= 1,
            Token::Word(word) => {
                let call = is_punct(tokens.get(*at + 1), '(');
                let literal = is_punct(tokens.get(*at + 1), ':');
                if !call && !literal && !is_reserved(word) {
                    result.names.push(path(word, None));
                }
            }
            _ => {}
        }
        *at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(q: &QueryNames) -> Vec<String> {
        q.names
            .iter()
            .map(|n| {
                let mut parts: Vec<String> = n.child.iter().cloned().collect();
                parts.extend(n.parents.iter().cloned());
                parts.push(n.field.clone());
                parts.join(".")
            })
            .collect()
    }

    #[test]
    fn fields_parents_children_and_conditions() {
        let q = names(
            "SELECT Id, Name, Account.Name, Owner.Email,
             (SELECT Id, Solution_Id__c FROM Microsoft_Solutions__r WHERE Sync_with_Partner_Center__c = true)
             FROM Opportunity WHERE Id = {{ soql_quote(triggerBody().Id) }} AND Amount > 10.5
             AND CloseDate = LAST_N_DAYS:30 ORDER BY CreatedDate DESC LIMIT {{ parameters('n') }}",
        )
        .unwrap();
        assert_eq!(q.object, "Opportunity");
        assert_eq!(q.children, ["Microsoft_Solutions__r"]);
        assert_eq!(
            flat(&q),
            [
                "Id",
                "Name",
                "Account.Name",
                "Owner.Email",
                "Microsoft_Solutions__r.Id",
                "Microsoft_Solutions__r.Solution_Id__c",
                "Microsoft_Solutions__r.Sync_with_Partner_Center__c",
                "Id",
                "Amount",
                "CloseDate",
                "CreatedDate",
            ]
        );
    }

    #[test]
    fn strings_templates_and_semi_joins_are_not_names() {
        let q = names(
            "SELECT Id FROM Contact WHERE Email = 'a.b@example.com' AND Title LIKE 'VP%' \
             AND AccountId IN (SELECT AccountId FROM Opportunity WHERE StageName = 'Closed Won') \
             AND LastModifiedDate >= 2024-05-21T08:05:00.000Z{{ (' OR Id = ' ~ x) if y else '' }}",
        )
        .unwrap();
        assert_eq!(flat(&q), ["Id", "Email", "Title", "AccountId", "LastModifiedDate"]);
        assert_eq!(q.nested.len(), 1);
        assert_eq!(q.nested[0].object, "Opportunity");
        assert_eq!(flat(&q.nested[0]), ["AccountId", "StageName"]);
    }

    #[test]
    fn a_poll_condition_names_its_fields() {
        let names = condition_names("Lead", "LeadSource = 'Partner Referral' AND IsConverted = false");
        let fields: Vec<&str> = names.iter().map(|n| n.field.as_str()).collect();
        assert_eq!(fields, ["LeadSource", "IsConverted"]);
        assert!(super::names("not a query").is_none());
    }
}

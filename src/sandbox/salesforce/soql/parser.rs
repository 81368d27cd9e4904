//! Recursive-descent parser for the SOQL subset.

use super::lexer::{Spanned, Tok, lex};
use super::{Cond, Literal, Name, Op, OrderKey, Path, Query, SelectItem, SoqlError};

/// Largest `OFFSET` Salesforce accepts.
const MAX_OFFSET: u64 = 2000;

/// Relative date literals taking no argument.
const RELATIVE: &[&str] = &[
    "YESTERDAY",
    "TODAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_QUARTER",
    "LAST_QUARTER",
    "NEXT_QUARTER",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
];

/// Relative date literals taking `:n`.
const RELATIVE_N: &[&str] = &[
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "LAST_N_WEEKS",
    "NEXT_N_WEEKS",
    "LAST_N_MONTHS",
    "NEXT_N_MONTHS",
    "LAST_N_YEARS",
    "NEXT_N_YEARS",
];

/// Words that end a select item or clause.
const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "LIMIT", "OFFSET", "GROUP", "HAVING", "IN",
    "LIKE", "INCLUDES", "EXCLUDES", "ASC", "DESC", "NULLS", "FIRST", "LAST", "NULL", "TRUE", "FALSE", "FOR",
    "UPDATE", "WITH", "USING",
];

/// Parses a SOQL query.
pub fn parse(source: &str) -> Result<Query, SoqlError> {
    let tokens = lex(source)?;
    let mut parser = Parser { source, tokens, at: 0 };
    let query = parser.query(false)?;
    if parser.keyword("FOR") {
        parser.advance();
        parser.expect_any_keyword(&["UPDATE", "VIEW", "REFERENCE"])?;
    }
    match parser.peek().tok {
        Tok::End => Ok(query),
        _ => Err(parser.unexpected()),
    }
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Spanned>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Spanned {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Spanned {
        &self.tokens[(self.at + n).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Spanned {
        let tok = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        tok
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        SoqlError::malformed(
            t.start,
            format!("unexpected token: '{}'", t.tok.describe(self.source, t.start, t.end)),
        )
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), SoqlError> {
        if self.keyword(word) {
            self.advance();
            return Ok(());
        }
        Err(self.unexpected())
    }

    fn expect_any_keyword(&mut self, words: &[&str]) -> Result<(), SoqlError> {
        if words.iter().any(|w| self.keyword(w)) {
            self.advance();
            return Ok(());
        }
        Err(self.unexpected())
    }

    fn expect(&mut self, tok: Tok) -> Result<(), SoqlError> {
        if self.peek().tok == tok {
            self.advance();
            return Ok(());
        }
        Err(self.unexpected())
    }

    fn query(&mut self, sub: bool) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select = self.select_list(sub)?;
        self.expect_keyword("FROM")?;
        let from = self.name()?;
        let condition = if self.keyword("WHERE") {
            self.advance();
            Some(self.condition()?)
        } else {
            None
        };
        if self.keyword("GROUP") {
            return Err(SoqlError::malformed(
                self.peek().start,
                "GROUP BY is not supported by the coflow sandbox".to_string(),
            ));
        }
        let order = if self.keyword("ORDER") {
            self.advance();
            self.expect_keyword("BY")?;
            self.order_list()?
        } else {
            Vec::new()
        };
        let limit = if self.keyword("LIMIT") {
            self.advance();
            Some(self.integer()?)
        } else {
            None
        };
        let offset = if self.keyword("OFFSET") {
            self.advance();
            let pos = self.peek().start;
            let n = self.integer()?;
            if n > MAX_OFFSET {
                return Err(SoqlError {
                    code: "NUMBER_OUTSIDE_VALID_RANGE",
                    message: format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                    pos,
                });
            }
            Some(n)
        } else {
            None
        };
        Ok(Query { select, from, condition, order, limit, offset })
    }

    fn select_list(&mut self, sub: bool) -> Result<Vec<SelectItem>, SoqlError> {
        let mut items = Vec::new();
        loop {
            items.push(self.select_item(sub)?);
            if self.peek().tok != Tok::Comma {
                break;
            }
            self.advance();
        }
        Ok(items)
    }

    fn select_item(&mut self, sub: bool) -> Result<SelectItem, SoqlError> {
        if self.peek().tok == Tok::LParen {
            if sub {
                return Err(self.unexpected());
            }
            self.advance();
            let query = self.query(true)?;
            self.expect(Tok::RParen)?;
            return Ok(SelectItem::Subquery(Box::new(query)));
        }
        if self.keyword("COUNT") && self.peek_at(1).tok == Tok::LParen && self.peek_at(2).tok == Tok::RParen {
            self.advance();
            self.advance();
            self.advance();
            return Ok(SelectItem::Count);
        }
        let path = self.path()?;
        if self.peek().tok == Tok::LParen {
            return Err(SoqlError::malformed(
                path.pos,
                format!(
                    "Aggregate function {} is not supported by the coflow sandbox; only COUNT() is",
                    path.parts.join(".")
                ),
            ));
        }
        Ok(SelectItem::Field(path))
    }

    fn name(&mut self) -> Result<Name, SoqlError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Ident(text) if !is_reserved(&text) => {
                self.advance();
                Ok(Name { text, pos: t.start })
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<Path, SoqlError> {
        let first = self.name()?;
        let mut parts = vec![first.text];
        while self.peek().tok == Tok::Dot {
            self.advance();
            let t = self.peek().clone();
            match t.tok {
                Tok::Ident(text) => {
                    self.advance();
                    parts.push(text);
                }
                _ => return Err(self.unexpected()),
            }
        }
        Ok(Path { parts, pos: first.pos })
    }

    fn integer(&mut self) -> Result<u64, SoqlError> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 => {
                self.advance();
                Ok(n as u64)
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `a AND b AND c` or `a OR b OR c`; mixing needs parentheses, as in SOQL.
    fn condition(&mut self) -> Result<Cond, SoqlError> {
        let first = self.unary()?;
        let joiner = if self.keyword("AND") {
            "AND"
        } else if self.keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        while self.keyword(joiner) {
            self.advance();
            parts.push(self.unary()?);
        }
        if self.keyword("AND") || self.keyword("OR") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" { Cond::And(parts) } else { Cond::Or(parts) })
    }

    fn unary(&mut self) -> Result<Cond, SoqlError> {
        if self.keyword("NOT") {
            self.advance();
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.advance();
            let inner = self.condition()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond, SoqlError> {
        let field = self.path()?;
        let op = self.operator()?;
        let value_pos = self.peek().start;
        let value = match op {
            Op::In | Op::NotIn | Op::Includes | Op::Excludes => self.list()?,
            _ => self.literal()?,
        };
        Ok(Cond::Cmp { field, op, value, value_pos })
    }

    fn operator(&mut self) -> Result<Op, SoqlError> {
        let t = self.peek().clone();
        let op = match &t.tok {
            Tok::Op(op) => match *op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Tok::Ident(w) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
            Tok::Ident(w) if w.eq_ignore_ascii_case("IN") => Op::In,
            Tok::Ident(w) if w.eq_ignore_ascii_case("INCLUDES") => Op::Includes,
            Tok::Ident(w) if w.eq_ignore_ascii_case("EXCLUDES") => Op::Excludes,
            Tok::Ident(w) if w.eq_ignore_ascii_case("NOT") => {
                self.advance();
                if !self.keyword("IN") {
                    return Err(self.unexpected());
                }
                Op::NotIn
            }
            _ => return Err(self.unexpected()),
        };
        self.advance();
        Ok(op)
    }

    fn list(&mut self) -> Result<Literal, SoqlError> {
        self.expect(Tok::LParen)?;
        if self.keyword("SELECT") {
            return Err(SoqlError::malformed(
                self.peek().start,
                "semi-join subqueries are not supported by the coflow sandbox".to_string(),
            ));
        }
        let mut items = vec![self.literal()?];
        while self.peek().tok == Tok::Comma {
            self.advance();
            items.push(self.literal()?);
        }
        self.expect(Tok::RParen)?;
        Ok(Literal::List(items))
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let t = self.peek().clone();
        let lit = match t.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n) => Literal::Num(n),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(ms) => Literal::DateTime(ms),
            Tok::Ident(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Ident(w) => return self.relative(w, t.start),
            _ => return Err(self.unexpected()),
        };
        self.advance();
        Ok(lit)
    }

    fn relative(&mut self, word: String, pos: usize) -> Result<Literal, SoqlError> {
        let upper = word.to_ascii_uppercase();
        if RELATIVE.contains(&upper.as_str()) {
            self.advance();
            return Ok(Literal::Relative(upper, None));
        }
        if !RELATIVE_N.contains(&upper.as_str()) {
            return Err(self.unexpected());
        }
        self.advance();
        if self.peek().tok != Tok::Colon {
            return Err(SoqlError::malformed(pos, format!("Invalid date literal: {word}")));
        }
        self.advance();
        let n = self.integer()?;
        Ok(Literal::Relative(upper, Some(n as i64)))
    }

    fn order_list(&mut self) -> Result<Vec<OrderKey>, SoqlError> {
        let mut keys = Vec::new();
        loop {
            let field = self.path()?;
            let mut ascending = true;
            if self.keyword("ASC") {
                self.advance();
            } else if self.keyword("DESC") {
                self.advance();
                ascending = false;
            }
            let mut nulls_first = ascending;
            if self.keyword("NULLS") {
                self.advance();
                if self.keyword("FIRST") {
                    nulls_first = true;
                } else if self.keyword("LAST") {
                    nulls_first = false;
                } else {
                    return Err(self.unexpected());
                }
                self.advance();
            }
            keys.push(OrderKey { field, ascending, nulls_first });
            if self.peek().tok != Tok::Comma {
                break;
            }
            self.advance();
        }
        Ok(keys)
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        let q = parse(
            "SELECT Id, Account.Name, (SELECT UserId FROM OpportunityTeamMembers WHERE TeamMemberRole != null) \
             FROM Opportunity WHERE (StageName IN ('Prospecting', 'Qualification') OR Amount >= 1000.5) \
             AND NOT Name LIKE 'Test%' AND CloseDate > 2024-01-01 AND CreatedDate = LAST_N_DAYS:7 \
             ORDER BY Amount DESC NULLS LAST, Name LIMIT 10 OFFSET 5",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.select.len(), 3);
        assert_eq!(q.from.text, "Opportunity");
        assert_eq!(q.order.len(), 2);
        assert!(!q.order[0].ascending && !q.order[0].nulls_first);
        assert!(q.order[1].ascending && q.order[1].nulls_first);
        assert_eq!((q.limit, q.offset), (Some(10), Some(5)));
        let Some(Cond::And(parts)) = q.condition else { panic!("expected AND") };
        assert_eq!(parts.len(), 4);
        assert!(matches!(parts[1], Cond::Not(_)));
    }

    #[test]
    fn rejects_mixed_and_or_without_parentheses() {
        let err = parse("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'").err();
        assert_eq!(err.map(|e| e.message), Some("unexpected token: 'OR'".to_string()));
    }

    #[test]
    fn reports_the_column_of_a_typo() {
        let source = "SELECT Id FORM Account";
        let err = parse(source).err().unwrap_or_else(|| panic!("should fail"));
        assert_eq!(err.code, "MALFORMED_QUERY");
        assert_eq!(
            err.render(source),
            "\nSELECT Id FORM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"
        );
    }

    #[test]
    fn string_escapes_follow_soql() {
        let q =
            parse(r"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ Co'").unwrap_or_else(|e| panic!("{e}"));
        let Some(Cond::Cmp { value: Literal::Str(s), .. }) = q.condition else { panic!("expected string") };
        assert_eq!(super::super::unescape(&s), r"O'Brien \ Co");
        assert!(parse(r"SELECT Id FROM Account WHERE Name = 'bad \q'").is_err());
    }
}

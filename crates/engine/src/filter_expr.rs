//! The filter language of `mnemo search --filter`: `status=open and priority<=1`,
//! `status in (open, blocked) and not mvp=true`, `file="plan v57.md" or number=2.1.2.1`,
//! `owner is null`. It compiles to the store's filter model; a mistake is reported with the
//! column where it is.
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=") VALUE
//!             | FIELD "in" "(" VALUE ("," VALUE)* ")"
//!             | FIELD "is" ["not"] "null"
//! ```
//!
//! `status` takes a status name; `priority` takes `P0`..`P3` or `0`..`3`, and its comparisons
//! mean urgency (`priority<=1` is P0 or P1). Other fields compare as stored: numbers with the
//! comparison operators, words and quoted strings with `=`, `!=` and `in`.

use std::fmt;

use mnemo_store::{Condition, Filter, MatchValue, Range};
use mnemo_text::Status;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub expression: String,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Characters of the expression shown on each side of the column in a message: a long
/// expression is shown around its mistake, so that the message stays short.
const SHOWN_AROUND: usize = 40;

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "filter, column {}: {}", self.column, self.message)?;
        let at = self.column.saturating_sub(1);
        let first = at.saturating_sub(SHOWN_AROUND);
        let length = self.expression.chars().count();
        let last = (at + SHOWN_AROUND).min(length);
        let shown: String = self
            .expression
            .chars()
            .skip(first)
            .take(last - first)
            .collect();
        let (before, after) = (
            if first > 0 { "…" } else { "" },
            if last < length { "…" } else { "" },
        );
        writeln!(f, "  {before}{shown}{after}")?;
        write!(
            f,
            "  {}{}^",
            " ".repeat(before.chars().count()),
            " ".repeat(at - first)
        )
    }
}

impl std::error::Error for FilterError {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    column: usize,
}

const OPERATORS: [&str; 6] = ["<=", ">=", "!=", "=", "<", ">"];

fn lex(expression: &str) -> Result<Vec<Spanned>, (usize, String)> {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' || c == ',' {
            let token = match c {
                '(' => Token::Open,
                ')' => Token::Close,
                _ => Token::Comma,
            };
            out.push(Spanned { token, column });
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err((column, "this quote is never closed".into())),
                    Some('\\') if chars.get(j + 1).is_some() => {
                        text.push(chars[j + 1]);
                        j += 2;
                    }
                    Some(&q) if q == c => break,
                    Some(&other) => {
                        text.push(other);
                        j += 1;
                    }
                }
            }
            out.push(Spanned {
                token: Token::Quoted(text),
                column,
            });
            i = j + 1;
        } else if let Some(op) = OPERATORS.iter().find(|op| {
            op.chars()
                .enumerate()
                .all(|(k, oc)| chars.get(i + k) == Some(&oc))
        }) {
            out.push(Spanned {
                token: Token::Op(op),
                column,
            });
            i += op.len();
        } else if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            out.push(Spanned {
                token: Token::Word(chars[start..i].iter().collect()),
                column,
            });
        } else {
            return Err((column, format!("unexpected `{c}`")));
        }
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | '[' | ']' | '@' | '#' | '+')
}

/// How deep parentheses and `not` may nest. The parser recurses once per level: without a
/// bound, a filter of 60,000 `(` (one GET) overflowed a server thread's stack. Half the
/// store's own bound on filters (`mnemo_store::MAX_FILTER_DEPTH`), so that what the language
/// builds always fits, with the conditions commands add around it.
pub const MAX_FILTER_DEPTH: usize = mnemo_store::MAX_FILTER_DEPTH / 2;

struct Parser<'a> {
    tokens: Vec<Spanned>,
    position: usize,
    expression: &'a str,
    /// Parentheses and `not` open around the current position.
    depth: usize,
}

type Parsed<T> = Result<T, (usize, String)>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.position)
    }

    fn end_column(&self) -> usize {
        self.expression.chars().count() + 1
    }

    fn column(&self) -> usize {
        self.peek().map_or_else(|| self.end_column(), |t| t.column)
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Spanned> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn expr(&mut self) -> Parsed<Condition> {
        let mut terms = vec![self.and()?];
        while self.is_keyword("or") {
            self.position += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::Filter(Filter::should(terms))
        })
    }

    fn and(&mut self) -> Parsed<Condition> {
        let mut terms = vec![self.unary()?];
        while self.is_keyword("and") {
            self.position += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Condition::Filter(Filter::must(terms))
        })
    }

    fn unary(&mut self) -> Parsed<Condition> {
        let nests = self.is_keyword("not")
            || matches!(
                self.peek(),
                Some(Spanned {
                    token: Token::Open,
                    ..
                })
            );
        if !nests {
            return self.comparison();
        }
        if self.depth == MAX_FILTER_DEPTH {
            return Err((
                self.column(),
                format!(
                    "parentheses and `not` nest deeper than {MAX_FILTER_DEPTH} levels here; \
                     write the filter flatter"
                ),
            ));
        }
        self.depth += 1;
        let nested = self.nested();
        self.depth -= 1;
        nested
    }

    /// `not X` or `(X)`, one level deeper.
    fn nested(&mut self) -> Parsed<Condition> {
        if self.is_keyword("not") {
            self.position += 1;
            return Ok(Condition::Filter(Filter::must_not([self.unary()?])));
        }
        if matches!(
            self.peek(),
            Some(Spanned {
                token: Token::Open,
                ..
            })
        ) {
            let open = self.column();
            self.position += 1;
            let inner = self.expr()?;
            return match self.next() {
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => Ok(inner),
                _ => Err((open, "this parenthesis is never closed".into())),
            };
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed<Condition> {
        let column = self.column();
        let field = match self.next() {
            Some(Spanned {
                token: Token::Word(word),
                ..
            }) => word,
            Some(_) => return Err((column, "expected a field name, like `status`".into())),
            None => return Err((column, "expected a condition, like `status=open`".into())),
        };
        let op_column = self.column();
        if self.is_keyword("in") {
            self.position += 1;
            let values = self.list()?;
            return compile(&field, "in", &values, op_column);
        }
        if self.is_keyword("is") {
            self.position += 1;
            let negated = self.is_keyword("not");
            if negated {
                self.position += 1;
            }
            if !self.is_keyword("null") {
                return Err((self.column(), "expected `null` after `is`".into()));
            }
            self.position += 1;
            let condition = Condition::is_null(&field);
            return Ok(if negated {
                Condition::Filter(Filter::must_not([condition]))
            } else {
                condition
            });
        }
        let op = match self.next() {
            Some(Spanned {
                token: Token::Op(op),
                ..
            }) => op,
            _ => {
                return Err((
                    op_column,
                    format!(
                        "expected an operator after `{field}`: =, !=, <, <=, >, >=, in, is null"
                    ),
                ));
            }
        };
        let value_column = self.column();
        let value = self.value()?;
        compile(&field, op, &[(value, value_column)], op_column)
    }

    fn value(&mut self) -> Parsed<Value> {
        let column = self.column();
        match self.next() {
            Some(Spanned {
                token: Token::Word(word),
                ..
            }) => Ok(Value::Bare(word)),
            Some(Spanned {
                token: Token::Quoted(text),
                ..
            }) => Ok(Value::Quoted(text)),
            _ => Err((column, "expected a value".into())),
        }
    }

    fn list(&mut self) -> Parsed<Vec<(Value, usize)>> {
        if !matches!(
            self.next(),
            Some(Spanned {
                token: Token::Open,
                ..
            })
        ) {
            return Err((
                self.column().saturating_sub(1).max(1),
                "expected `(` after `in`".into(),
            ));
        }
        let mut values = Vec::new();
        loop {
            let column = self.column();
            values.push((self.value()?, column));
            match self.next() {
                Some(Spanned {
                    token: Token::Comma,
                    ..
                }) => {}
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => return Ok(values),
                _ => return Err((column, "expected `,` or `)` after this value".into())),
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Bare(String),
    Quoted(String),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Self::Bare(s) | Self::Quoted(s) => s,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Bare(s) => s.parse::<f64>().ok().filter(|n| n.is_finite()),
            Self::Quoted(_) => None,
        }
    }

    fn match_value(&self) -> MatchValue {
        match self {
            Self::Bare(s) if s == "true" => MatchValue::Bool(true),
            Self::Bare(s) if s == "false" => MatchValue::Bool(false),
            Self::Bare(s) => s
                .parse::<i64>()
                .map_or_else(|_| MatchValue::Keyword(s.clone()), MatchValue::Integer),
            Self::Quoted(s) => MatchValue::Keyword(s.clone()),
        }
    }
}

fn compile(
    field: &str,
    op: &str,
    values: &[(Value, usize)],
    op_column: usize,
) -> Parsed<Condition> {
    match field {
        "status" => {
            let statuses = values
                .iter()
                .map(|(value, column)| {
                    Status::parse(&value.text().replace(' ', "_"))
                        .map(|s| MatchValue::Keyword(s.as_str().to_owned()))
                        .ok_or_else(|| {
                            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                            (
                                *column,
                                format!(
                                    "unknown status `{}`: expected one of {}",
                                    value.text(),
                                    names.join(", ")
                                ),
                            )
                        })
                })
                .collect::<Parsed<Vec<_>>>()?;
            keyword_condition(field, op, statuses, op_column)
        }
        "priority" => {
            let ranks = values
                .iter()
                .map(|(value, column)| {
                    let text = value.text();
                    let digits = text.strip_prefix(['P', 'p']).unwrap_or(text);
                    digits
                        .parse::<u8>()
                        .ok()
                        .filter(|rank| *rank <= 3)
                        .ok_or_else(|| {
                            (
                                *column,
                                format!(
                                    "unknown priority `{text}`: expected P0, P1, P2, P3 (or 0 to 3)"
                                ),
                            )
                        })
                })
                .collect::<Parsed<Vec<u8>>>()?;
            let names = |keep: &dyn Fn(u8) -> bool| -> Vec<MatchValue> {
                (0..=3)
                    .filter(|r| keep(*r))
                    .map(|r| MatchValue::Keyword(format!("P{r}")))
                    .collect()
            };
            let rank = ranks[0];
            let set = match op {
                "<" => names(&|r| r < rank),
                "<=" => names(&|r| r <= rank),
                ">" => names(&|r| r > rank),
                ">=" => names(&|r| r >= rank),
                _ => ranks
                    .iter()
                    .map(|r| MatchValue::Keyword(format!("P{r}")))
                    .collect(),
            };
            let op = if matches!(op, "<" | "<=" | ">" | ">=") {
                "in"
            } else {
                op
            };
            keyword_condition(field, op, set, op_column)
        }
        _ => match op {
            "<" | "<=" | ">" | ">=" => {
                let (value, column) = &values[0];
                let number = value.number().ok_or_else(|| {
                    (
                        *column,
                        format!("`{op}` compares numbers; `{}` is not one", value.text()),
                    )
                })?;
                let mut range = Range::default();
                match op {
                    "<" => range.lt = Some(number),
                    "<=" => range.lte = Some(number),
                    ">" => range.gt = Some(number),
                    _ => range.gte = Some(number),
                }
                Ok(Condition::range(field, range))
            }
            _ => {
                let matches: Vec<MatchValue> = values
                    .iter()
                    .map(|(value, _)| value.match_value())
                    .collect();
                keyword_condition(field, op, matches, op_column)
            }
        },
    }
}

fn keyword_condition(
    field: &str,
    op: &str,
    values: Vec<MatchValue>,
    op_column: usize,
) -> Parsed<Condition> {
    match (op, values.as_slice()) {
        ("=", [value]) => Ok(Condition::matches(field, value.clone())),
        ("!=", [value]) => Ok(Condition::Filter(Filter::must_not([Condition::matches(
            field,
            value.clone(),
        )]))),
        ("in", _) => Ok(Condition::any(field, values)),
        _ => Err((op_column, format!("`{op}` does not apply to `{field}`"))),
    }
}

/// Compiles `expression`; an empty one is no filter.
pub fn parse_filter(expression: &str) -> Result<Filter, FilterError> {
    let error = |(column, message): (usize, String)| FilterError {
        expression: expression.to_owned(),
        column,
        message,
    };
    let tokens = lex(expression).map_err(error)?;
    if tokens.is_empty() {
        return Ok(Filter::default());
    }
    let mut parser = Parser {
        tokens,
        position: 0,
        expression,
        depth: 0,
    };
    let condition = parser.expr().map_err(error)?;
    if let Some(extra) = parser.peek() {
        return Err(error((
            extra.column,
            "expected `and`, `or` or the end of the filter".into(),
        )));
    }
    Ok(match condition {
        Condition::Filter(filter) => filter,
        other => Filter::must([other]),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn json_of(expression: &str) -> serde_json::Value {
        serde_json::to_value(parse_filter(expression).unwrap()).unwrap()
    }

    #[test]
    fn nesting_is_bounded_and_named_where_it_goes_too_deep() {
        let deep = format!("{}status=open{}", "(".repeat(60_000), ")".repeat(60_000));
        let err = parse_filter(&deep).unwrap_err();
        assert_eq!(err.column, MAX_FILTER_DEPTH + 1, "{err}");
        assert!(err.message.contains("deeper than 32 levels"), "{err}");
        assert!(
            err.to_string().len() < 400,
            "the message shows the expression around the mistake"
        );
        let nots = format!("{}status=open", "not ".repeat(100));
        assert!(parse_filter(&nots).is_err());
        let fine = format!(
            "{}status=open{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(parse_filter(&fine).is_ok());
    }

    #[test]
    fn compiles_to_qdrant_filters() {
        assert_eq!(
            json_of("status=open and priority<=1"),
            json!({"must": [
                {"key": "status", "match": {"value": "open"}},
                {"key": "priority", "match": {"any": ["P0", "P1"]}}
            ]})
        );
        assert_eq!(
            json_of("status in (open, 'in progress') or not mvp=true"),
            json!({"should": [
                {"key": "status", "match": {"any": ["open", "in_progress"]}},
                {"must_not": [{"key": "mvp", "match": {"value": true}}]}
            ]})
        );
        assert_eq!(
            json_of("line >= 10 and number=2.1.2.1 and owner is not null"),
            json!({"must": [
                {"key": "line", "range": {"gte": 10.0}},
                {"key": "number", "match": {"value": "2.1.2.1"}},
                {"must_not": [{"is_null": {"key": "owner"}}]}
            ]})
        );
        assert_eq!(json_of("  "), json!({}));
    }

    #[test]
    fn errors_point_at_their_column() {
        let err = parse_filter("status=open and priority<=high").unwrap_err();
        assert_eq!(err.column, 27);
        assert!(err.message.contains("unknown priority `high`"), "{err}");
        assert!(
            err.to_string()
                .ends_with(&format!("\n  {}^", " ".repeat(26))),
            "{err}"
        );
        assert_eq!(parse_filter("status=opn").unwrap_err().column, 8);
        assert_eq!(parse_filter("(status=open").unwrap_err().column, 1);
        assert_eq!(parse_filter("status open").unwrap_err().column, 8);
        assert_eq!(parse_filter("line < ten").unwrap_err().column, 8);
        assert_eq!(parse_filter("title=\"abc").unwrap_err().column, 7);
        assert_eq!(
            parse_filter("status=open status=done").unwrap_err().column,
            13
        );
        assert_eq!(parse_filter("status=open and").unwrap_err().column, 16);
    }
}

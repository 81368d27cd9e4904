//! The expression layer: typed rendering, the Power Automate function library (every function
//! of the reference with its documented examples), missing properties, workflow functions,
//! secrets, mappings, the Power Automate translator and `coflow eval`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use coflow::expr::{
    DataScope, Mapping, MappingError, Mappings, Scope, compile, eval_expression, pa, secrets,
};
use serde_json::{Value, json};

// ---- helpers ----------------------------------------------------------------------------

/// Translates a Power Automate expression and evaluates it with `data` as `triggerBody()`.
fn pa_eval(expr: &str, data: Value) -> Result<Value, String> {
    let ours = pa::translate_expression(expr).map_err(|e| format!("translate: {e}"))?;
    eval_expression(&ours, Some(data)).map_err(|e| e.message)
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expr").join(path)
}

fn referral() -> Value {
    let text = std::fs::read_to_string(fixture("pc-referral.json")).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn coflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_coflow"))
}

/// Runs `coflow eval` and returns (exit success, stdout, stderr).
fn run_eval(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = coflow();
    cmd.arg("eval").args(args).env_remove("COFLOW_SECRETS_FILE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run coflow");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Checks a table of (Power Automate expression, expected JSON) with no trigger data.
fn check_table(cases: &[(&str, Value)]) {
    let mut failures = Vec::new();
    for (expr, expected) in cases {
        match pa_eval(expr, Value::Null) {
            Ok(got) if &got == expected => {}
            Ok(got) => failures.push(format!("{expr}\n    expected {expected}\n    got      {got}")),
            Err(e) => failures.push(format!("{expr}\n    expected {expected}\n    error    {e}")),
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// Checks that each Power Automate expression fails with a message containing the given text.
fn check_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (expr, wanted) in cases {
        match pa_eval(expr, Value::Null) {
            Err(e) if e.contains(wanted) => {}
            Err(e) => failures.push(format!("{expr}: error {e:?} lacks {wanted:?}")),
            Ok(v) => failures.push(format!("{expr}: expected an error containing {wanted:?}, got {v}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- typed rendering --------------------------------------------------------------------

fn render(template: Value) -> Value {
    let scope: Arc<dyn Scope> = Arc::new(DataScope {
        body: json!({"n": 2, "name": "Ann", "flag": true, "none": null, "obj": {"a": [1, "x"]}}),
    });
    compile(&template).expect("compiles").render(&scope).expect("renders")
}

#[test]
fn a_single_expression_keeps_its_type() {
    assert_eq!(render(json!("{{ 1 + 2 }}")), json!(3));
    assert_eq!(render(json!("{{ add(1, 2) }}")), json!(3));
    assert!(render(json!("{{ add(1, 2) }}")).is_i64());
    assert_eq!(render(json!("{{ triggerBody().flag }}")), json!(true));
    assert_eq!(render(json!("{{ triggerBody().obj }}")), json!({"a": [1, "x"]}));
    assert_eq!(render(json!("{{ triggerBody().none }}")), json!(null));
    assert_eq!(render(json!("  {{ mul(1.5, 2) }}  ")), json!("  3  "));
}

#[test]
fn text_interpolation_stringifies_like_power_automate() {
    assert_eq!(render(json!("n={{ triggerBody().n }}")), json!("n=2"));
    assert_eq!(render(json!("[{{ triggerBody().none }}]")), json!("[]"));
    assert_eq!(render(json!("b={{ triggerBody().flag }}")), json!("b=True"));
    assert_eq!(render(json!("o={{ triggerBody().obj }}")), json!(r#"o={"a":[1,"x"]}"#));
    assert_eq!(render(json!("f={{ mul(1.5, 2) }}")), json!("f=3"));
    assert_eq!(render(json!("Hi {{ triggerBody().name }}, {{ 'bye' }}")), json!("Hi Ann, bye"));
}

#[test]
fn literals_arrays_and_objects() {
    assert_eq!(render(json!("plain text with } and {")), json!("plain text with } and {"));
    assert_eq!(render(json!(42)), json!(42));
    assert_eq!(
        render(json!({"a": "{{ triggerBody().n }}", "b": ["x", "{{ triggerBody().name }}!"]})),
        json!({"a": 2, "b": ["x", "Ann!"]})
    );
    assert_eq!(render(json!(r#"{{ json('{"a": {"b": 1}}').a.b }}"#)), json!(1));
}

#[test]
fn broken_templates_fail_to_compile() {
    assert!(compile(&json!("{{ 1 + }}")).is_err());
    let err = compile(&json!("x {{ unclosed")).unwrap_err();
    assert!(err.message.contains("}}"), "{}", err.message);
}

// ---- the function library ---------------------------------------------------------------

#[test]
fn string_functions() {
    check_table(&[
        ("chunk('abcdefghijklmnopqrstuvwxyz', 10)", json!(["abcdefghij", "klmnopqrst", "uvwxyz"])),
        (
            "chunk(createArray(1,2,3,4,5,6,7,8,9,10,11,12), 5)",
            json!([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]),
        ),
        ("concat('Hello', 'World')", json!("HelloWorld")),
        ("concat('n=', 1, null, true)", json!("n=1True")),
        ("endsWith('hello world', 'world')", json!(true)),
        ("endsWith('hello world', 'universe')", json!(false)),
        ("endsWith('hello world', 'WORLD')", json!(true)),
        ("formatNumber(1234567890, '#,##0.00', 'en-US')", json!("1,234,567,890.00")),
        ("formatNumber(1234567890, '#,##0.00', 'is-IS')", json!("1.234.567.890,00")),
        ("formatNumber(17.35, 'C2')", json!("$17.35")),
        ("formatNumber(17.35, 'C2', 'is-IS')", json!("17,35 kr")),
        ("length(guid())", json!(36)),
        ("length(guid('N'))", json!(32)),
        ("startsWith(guid('P'), '(')", json!(true)),
        ("startsWith(guid('B'), '{')", json!(true)),
        ("indexOf('hello world', 'world')", json!(6)),
        ("indexOf('hello world', 'WORLD')", json!(6)),
        ("indexOf('hello world', 'universe')", json!(-1)),
        ("isFloat('10,000.00')", json!(true)),
        ("isFloat('10.000,00', 'de-DE')", json!(true)),
        ("isFloat('abc')", json!(false)),
        ("isInt('10')", json!(true)),
        ("isInt('10.5')", json!(false)),
        ("lastIndexOf('hello world hello world', 'world')", json!(18)),
        ("lastIndexOf('hello world hello world', '')", json!(22)),
        ("lastIndexOf('', 'x')", json!(-1)),
        ("lastIndexOf('', '')", json!(0)),
        ("length('abcd')", json!(4)),
        ("length(createArray(0,1,2,3))", json!(4)),
        ("nthIndexOf('123456789123465789', '1', 1)", json!(0)),
        ("nthIndexOf('123456789123465789', '1', 2)", json!(9)),
        ("nthIndexOf('123456789123465789', '12', 2)", json!(9)),
        ("nthIndexOf('123456789123465789', '6', 4)", json!(-1)),
        ("nthIndexOf('123456789123465789', '1', -1)", json!(9)),
        ("replace('the old string', 'old', 'new')", json!("the new string")),
        ("replace('a-a-a', 'a', 'b')", json!("b-b-b")),
        ("replace('Old', 'old', 'new')", json!("Old")),
        ("slice('Hello World', 2)", json!("llo World")),
        ("slice('Hello World', 30)", json!("")),
        ("slice('Hello World', 10, 2)", json!("")),
        ("slice('Hello World', 0)", json!("Hello World")),
        ("slice('Hello World', 2, 5)", json!("llo")),
        ("slice('Hello World', 6, 20)", json!("World")),
        ("slice('Hello World', -2)", json!("ld")),
        ("slice('Hello World', 3, -1)", json!("lo Worl")),
        ("slice('Hello World', 3, 3)", json!("")),
        ("split('a_b_c', '_')", json!(["a", "b", "c"])),
        ("split('a_b_c', ' ')", json!(["a_b_c"])),
        ("startsWith('hello world', 'hello')", json!(true)),
        ("startsWith('hello world', 'greetings')", json!(false)),
        ("substring('hello world', 6, 5)", json!("world")),
        ("substring('hello world', 6)", json!("world")),
        ("toLower('Hello World')", json!("hello world")),
        ("toUpper('Hello World')", json!("HELLO WORLD")),
        ("trim(' Hello World  ')", json!("Hello World")),
    ]);
    check_errors(&[
        ("substring('hello world', 6, 10)", "must not exceed"),
        ("chunk('abc', 0)", "greater than 0"),
        ("guid('Q')", "unknown guid format"),
        ("formatNumber(1, 'C', 'xx-XX')", "unsupported locale"),
        ("length(1)", "expects a string or an array"),
    ]);
}

#[test]
fn collection_functions() {
    check_table(&[
        ("contains('hello world', 'world')", json!(true)),
        ("contains('hello world', 'universe')", json!(false)),
        ("contains('hello world', 'WORLD')", json!(false)),
        ("contains(createArray(1, 2), 2)", json!(true)),
        ("contains(json('{\"a\": 1}'), 'a')", json!(true)),
        ("empty('')", json!(true)),
        ("empty('abc')", json!(false)),
        ("empty(createArray())", json!(true)),
        ("empty(json('{}'))", json!(true)),
        ("empty(null)", json!(true)),
        ("first('hello')", json!("h")),
        ("first(createArray(0,1,2))", json!(0)),
        ("first(createArray())", json!(null)),
        ("intersection(createArray(1,2,3), createArray(101,2,1,10), createArray(6,8,1,2))", json!([1, 2])),
        ("intersection(json('{\"a\":1,\"b\":2}'), json('{\"a\":3,\"c\":4}'))", json!({"a": 3})),
        ("join(createArray('a','b','c'), '.')", json!("a.b.c")),
        ("last('abcd')", json!("d")),
        ("last(createArray(0,1,2,3))", json!(3)),
        ("reverse(createArray(0,1,2,3))", json!([3, 2, 1, 0])),
        ("skip(createArray(0,1,2,3), 1)", json!([1, 2, 3])),
        ("skip(createArray(0,1), 5)", json!([])),
        ("sort(createArray(2,1,0,3))", json!([0, 1, 2, 3])),
        (
            "sort(createArray(json('{\"last\":\"b\"}'), json('{\"last\":\"a\"}')), 'last')",
            json!([{"last": "a"}, {"last": "b"}]),
        ),
        ("take('abcde', 3)", json!("abc")),
        ("take(createArray(0,1,2,3,4), 3)", json!([0, 1, 2])),
        ("union(createArray(1,2,3), createArray(1,2,10,101))", json!([1, 2, 3, 10, 101])),
        ("union(json('{\"a\":1}'), json('{\"a\":2,\"b\":3}'))", json!({"a": 2, "b": 3})),
    ]);
    check_errors(&[
        ("contains(null, 'x')", "The provided value is of type 'Null'"),
        ("union(createArray(1), 'x')", "all parameters to be arrays"),
        ("sort(createArray(createArray(1)))", "can only sort by"),
    ]);
}

#[test]
fn logical_functions() {
    check_table(&[
        ("and(true, true)", json!(true)),
        ("and(false, true)", json!(false)),
        ("and(equals(1,1), equals(2,2))", json!(true)),
        ("equals(true, 1)", json!(true)),
        ("equals('abc', 'abcd')", json!(false)),
        ("equals(null, '')", json!(true)),
        ("equals(1, 1.0)", json!(true)),
        ("equals('A', 'a')", json!(false)),
        ("greater(10, 5)", json!(true)),
        ("greater('apple', 'banana')", json!(false)),
        ("greaterOrEquals(5, 5)", json!(true)),
        ("greaterOrEquals('apple', 'banana')", json!(false)),
        ("if(equals(1, 1), 'yes', 'no')", json!("yes")),
        ("if(false, 'yes', 'no')", json!("no")),
        ("less(5, 10)", json!(true)),
        ("less('banana', 'apple')", json!(false)),
        ("lessOrEquals(10, 10)", json!(true)),
        ("lessOrEquals('apply', 'apple')", json!(false)),
        ("not(false)", json!(true)),
        ("not(equals(1, 1))", json!(false)),
        ("or(true, false)", json!(true)),
        ("or(false, false)", json!(false)),
    ]);
    check_errors(&[
        ("greater(1, 'a')", "can only compare"),
        ("if('yes', 1, 2)", "must be a boolean"),
        ("and(true, 1)", "must be a boolean"),
    ]);
}

#[test]
fn conversion_functions() {
    check_table(&[
        ("array('hello')", json!(["hello"])),
        ("base64('hello')", json!("aGVsbG8=")),
        (
            "base64ToBinary('aGVsbG8=')",
            json!({"$content-type": "application/octet-stream", "$content": "aGVsbG8="}),
        ),
        ("base64ToString('aGVsbG8=')", json!("hello")),
        ("binary('hello')", json!({"$content-type": "application/octet-stream", "$content": "aGVsbG8="})),
        ("base64(binary('hello'))", json!("aGVsbG8=")),
        ("bool(1)", json!(true)),
        ("bool(0)", json!(false)),
        ("bool(-1)", json!(true)),
        ("bool('true')", json!(true)),
        ("bool('false')", json!(false)),
        ("createArray('h','e','l','l','o')", json!(["h", "e", "l", "l", "o"])),
        ("dataUri('hello')", json!("data:text/plain;charset=utf-8;base64,aGVsbG8=")),
        (
            "dataUriToBinary('data:text/plain;charset=utf-8;base64,aGVsbG8=')",
            json!({"$content-type": "text/plain", "$content": "aGVsbG8="}),
        ),
        ("dataUriToString('data:text/plain;charset=utf-8;base64,aGVsbG8=')", json!("hello")),
        ("decimal('1.25')", json!(1.25)),
        ("add(decimal('1.5'), decimal('1.25'))", json!(2.75)),
        ("decodeBase64('aGVsbG8=')", json!("hello")),
        ("decodeDataUri('data:text/plain;charset=utf-8;base64,aGVsbG8=')", json!("hello")),
        ("decodeUriComponent('https%3A%2F%2Fcontoso.com')", json!("https://contoso.com")),
        ("encodeUriComponent('https://contoso.com')", json!("https%3A%2F%2Fcontoso.com")),
        ("float('10,000.333')", json!(10000.333)),
        ("float('10.000,333', 'de-DE')", json!(10000.333)),
        ("float('12,3,4,5678')", json!(12345678.0)),
        ("float('1234567,8+')", json!(12345678.0)),
        ("float('12345,6,78,-')", json!(-12345678.0)),
        ("float('-12,345,678,')", json!(-12345678.0)),
        ("float('12345678.-')", json!(-12345678.0)),
        ("float('.12345678')", json!(0.12345678)),
        ("int('10')", json!(10)),
        ("json('[1, 2, 3]')", json!([1, 2, 3])),
        ("json('{\"fullName\": \"Sophia Owen\"}')", json!({"fullName": "Sophia Owen"})),
        ("json(null)", json!({})),
        ("string(10)", json!("10")),
        ("string(null)", json!("")),
        ("string(json('{\"a\": 1}'))", json!(r#"{"a":1}"#)),
        ("uriComponent('https://contoso.com')", json!("https%3A%2F%2Fcontoso.com")),
        (
            "uriComponentToBinary('https%3A%2F%2Fcontoso.com')",
            json!({"$content-type": "application/octet-stream", "$content": "aHR0cHM6Ly9jb250b3NvLmNvbQ=="}),
        ),
        ("uriComponentToString('https%3A%2F%2Fcontoso.com')", json!("https://contoso.com")),
        ("xml('<name>Sophia Owen</name>')", json!("<name>Sophia Owen</name>")),
        ("xml(json('{ \"name\": \"Sophia Owen\" }'))", json!("<name>Sophia Owen</name>")),
    ]);
    check_errors(&[
        ("int('abc')", "'abc' cannot be converted to an integer"),
        ("bool('maybe')", "cannot convert 'maybe' to a boolean"),
        ("json('{not json')", "not valid JSON"),
        ("float('abc')", "not a valid number"),
        ("xml(json('{\"a\": 1, \"b\": 2}'))", "exactly one root property"),
        ("base64ToString('***')", "not valid base64"),
        ("dataUriToString('hello')", "not a data URI"),
    ]);
}

#[test]
fn math_functions() {
    check_table(&[
        ("add(1, 1.5)", json!(2.5)),
        ("add(1, 2)", json!(3)),
        ("div(10, 5)", json!(2)),
        ("div(11, 5)", json!(2)),
        ("div(11, 5.0)", json!(2.2)),
        ("div(11.0, 5)", json!(2.2)),
        ("max(1, 2, 3)", json!(3)),
        ("max(createArray(1, 2, 3))", json!(3)),
        ("min(1, 2, 3)", json!(1)),
        ("min(createArray(4, 2.5))", json!(2.5)),
        ("mod(3, 2)", json!(1)),
        ("mod(-5, 2)", json!(-1)),
        ("mod(4, -3)", json!(1)),
        ("mul(1, 2)", json!(2)),
        ("mul(1.5, 2)", json!(3.0)),
        ("range(1, 4)", json!([1, 2, 3, 4])),
        ("sub(10.3, .3)", json!(10.0)),
        ("sub(1, 3)", json!(-2)),
    ]);
    for _ in 0..20 {
        let v = pa_eval("rand(1, 5)", Value::Null).expect("rand").as_i64().expect("int");
        assert!((1..5).contains(&v), "rand(1, 5) gave {v}");
    }
    check_errors(&[
        ("div(1, 0)", "cannot divide by zero"),
        ("mod(1, 0)", "cannot divide by zero"),
        ("add('1', 2)", "must be a number"),
        ("rand(5, 1)", "must be less than"),
        ("range(0, 100001)", "exceeds the limit"),
        ("add(9223372036854775807, 1)", "64-bit"),
    ]);
}

#[test]
fn date_and_time_functions() {
    check_table(&[
        ("addDays('2018-03-15T00:00:00Z', 10)", json!("2018-03-25T00:00:00.0000000Z")),
        ("addDays('2018-03-15T00:00:00Z', -5)", json!("2018-03-10T00:00:00.0000000Z")),
        ("addHours('2018-03-15T00:00:00Z', 10)", json!("2018-03-15T10:00:00.0000000Z")),
        ("addMinutes('2018-03-15T00:10:00Z', 10)", json!("2018-03-15T00:20:00.0000000Z")),
        ("addSeconds('2018-03-15T00:00:00Z', 10)", json!("2018-03-15T00:00:10.0000000Z")),
        ("addToTime('2018-01-01T00:00:00Z', 1, 'Day')", json!("2018-01-02T00:00:00.0000000Z")),
        ("addToTime('2018-01-01T00:00:00Z', 1, 'Day', 'D')", json!("Tuesday, January 2, 2018")),
        ("addToTime('2018-01-31T00:00:00Z', 1, 'Month')", json!("2018-02-28T00:00:00.0000000Z")),
        (
            "convertFromUtc('2018-01-01T08:00:00.0000000Z', 'Pacific Standard Time')",
            json!("2018-01-01T00:00:00.0000000"),
        ),
        (
            "convertFromUtc('2018-01-01T08:00:00.0000000Z', 'Pacific Standard Time', 'D')",
            json!("Monday, January 1, 2018"),
        ),
        (
            "convertTimeZone('2018-01-01T08:00:00.0000000Z', 'UTC', 'Pacific Standard Time')",
            json!("2018-01-01T00:00:00.0000000"),
        ),
        (
            "convertToUtc('01/01/2018 00:00:00', 'Pacific Standard Time')",
            json!("2018-01-01T08:00:00.0000000Z"),
        ),
        (
            "convertToUtc('01/01/2018 00:00:00', 'Pacific Standard Time', 'D')",
            json!("Monday, January 1, 2018"),
        ),
        (
            "convertToUtc('2018-07-01T00:00:00', 'W. Europe Standard Time')",
            json!("2018-06-30T22:00:00.0000000Z"),
        ),
        ("dateDifference('2015-02-08', '2018-07-30')", json!("1268.00:00:00")),
        ("dateDifference('2018-07-30T12:00:00', '2018-07-30T10:30:00')", json!("-01:30:00")),
        ("dayOfMonth('2018-03-15T13:27:36Z')", json!(15)),
        ("dayOfWeek('2018-03-15T13:27:36Z')", json!(4)),
        ("dayOfYear('2018-03-15T13:27:36Z')", json!(74)),
        ("formatDateTime('03/15/2018')", json!("2018-03-15T00:00:00.0000000")),
        ("formatDateTime('03/15/2018 12:00:00', 'yyyy-MM-ddTHH:mm:ss')", json!("2018-03-15T12:00:00")),
        ("formatDateTime('01/31/2016', 'dddd MMMM d')", json!("Sunday January 31")),
        ("formatDateTime('01/31/2016', 'dddd MMMM d', 'fr-fr')", json!("dimanche janvier 31")),
        ("formatDateTime('01/31/2016', 'dddd MMMM d', 'es-es')", json!("domingo enero 31")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'o')", json!("2018-03-15T13:27:36.0000000Z")),
        ("formatDateTime('2018-03-15T13:27:36Z', 's')", json!("2018-03-15T13:27:36")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'u')", json!("2018-03-15 13:27:36Z")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'd')", json!("3/15/2018")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'D')", json!("Thursday, March 15, 2018")),
        ("formatDateTime('2018-03-15T13:27:36Z', 't')", json!("1:27 PM")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'T')", json!("1:27:36 PM")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'M')", json!("March 15")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'Y')", json!("March 2018")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'R')", json!("Thu, 15 Mar 2018 13:27:36 GMT")),
        ("formatDateTime('2018-03-15T13:27:36.1234567Z', 'HH:mm:ss.fff K')", json!("13:27:36.123 Z")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'yyyy''T''HH')", json!("2018T13")),
        ("formatDateTime('2018-03-15T13:27:36Z', 'hh\\h tt')", json!("01h PM")),
        ("formatDateTime('2018-03-15T13:27:36+02:00')", json!("2018-03-15T11:27:36.0000000Z")),
        ("parseDateTime('20/10/2014', 'fr-fr')", json!("2014-10-20T00:00:00.0000000")),
        ("parseDateTime('20 octobre 2010', 'fr-FR')", json!("2010-10-20T00:00:00.0000000")),
        ("parseDateTime('martes 20 octubre 2020', 'es-es')", json!("2020-10-20T00:00:00.0000000")),
        ("parseDateTime('21052019', 'fr-fr', 'ddMMyyyy')", json!("2019-05-21T00:00:00.0000000")),
        (
            "parseDateTime('10/20/2014 15h', 'en-US', 'MM/dd/yyyy HH\\h')",
            json!("2014-10-20T15:00:00.0000000"),
        ),
        ("startOfDay('2018-03-15T13:30:30Z')", json!("2018-03-15T00:00:00.0000000Z")),
        ("startOfHour('2018-03-15T13:30:30Z')", json!("2018-03-15T13:00:00.0000000Z")),
        ("startOfMonth('2018-03-15T13:30:30Z')", json!("2018-03-01T00:00:00.0000000Z")),
        ("startOfMonth('2018-03-15T13:30:30Z', 'yyyy-MM-dd')", json!("2018-03-01")),
        ("subtractFromTime('2018-01-02T00:00:00Z', 1, 'Day')", json!("2018-01-01T00:00:00.0000000Z")),
        ("subtractFromTime('2018-01-02T00:00:00Z', 1, 'Day', 'D')", json!("Monday, January 1, 2018")),
        ("ticks('2018-01-01T00:00:00Z')", json!(636503616000000000i64)),
    ]);
    check_errors(&[
        ("addDays('not a date', 1)", "is not a valid timestamp"),
        ("addToTime('2018-01-01T00:00:00Z', 1, 'Fortnight')", "unknown time unit"),
        ("convertFromUtc('2018-01-01T08:00:00Z', 'Mars Standard Time')", "unknown time zone"),
        ("formatDateTime('2018-01-01', 'Q')", "not a valid standard date and time format"),
        ("parseDateTime('31-31-2020', 'en-US', 'dd-MM-yyyy')", "is not a timestamp"),
    ]);
}

#[test]
fn now_based_functions_follow_the_clock() {
    let all = "createArray(utcNow(), utcNow('u'), utcNow('U'), utcNow('d'), utcNow('D'), utcNow('t'), utcNow('T'), utcNow('y'), utcNow('yyyy'), utcNow('ddd, d MMM yyyy'))";
    let (ok, out, err) = run_eval(&["--pa", all], &[("COFLOW_NOW", "2025-09-25T05:18:31.3384797Z")]);
    assert!(ok, "{err}");
    let got: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        got,
        json!([
            "2025-09-25T05:18:31.3384797Z",
            "2025-09-25 05:18:31Z",
            "Thursday, September 25, 2025 5:18:31 AM",
            "9/25/2025",
            "Thursday, September 25, 2025",
            "5:18 AM",
            "5:18:31 AM",
            "September 2025",
            "2025",
            "Thu, 25 Sep 2025"
        ])
    );
    let (ok, out, err) = run_eval(
        &["--pa", "createArray(getFutureTime(5, 'Day'), getFutureTime(5, 'Day', 'D'))"],
        &[("COFLOW_NOW", "2018-03-01T00:00:00.0000000Z")],
    );
    assert!(ok, "{err}");
    assert_eq!(out, r#"["2018-03-06T00:00:00.0000000Z","Tuesday, March 6, 2018"]"#);
    let (ok, out, err) = run_eval(
        &["--pa", "createArray(getPastTime(5, 'Day'), getPastTime(5, 'Day', 'D'))"],
        &[("COFLOW_NOW", "2018-02-01T00:00:00.0000000Z")],
    );
    assert!(ok, "{err}");
    assert_eq!(out, r#"["2018-01-27T00:00:00.0000000Z","Saturday, January 27, 2018"]"#);
}

#[test]
fn the_real_clock_is_used_without_an_override() {
    let now = pa_eval("utcNow()", Value::Null).expect("utcNow");
    let text = now.as_str().expect("string");
    assert!(text.ends_with('Z') && text.len() == 28, "{text}");
    let same_day = pa_eval("equals(startOfDay(getFutureTime(0, 'Day')), startOfDay(utcNow()))", Value::Null);
    assert_eq!(same_day, Ok(json!(true)));
}

#[test]
fn uri_functions() {
    check_table(&[
        ("uriHost('https://www.localhost.com:8080')", json!("www.localhost.com")),
        ("uriPath('https://www.contoso.com/catalog/shownew.htm?date=today')", json!("/catalog/shownew.htm")),
        ("uriPath('https://www.contoso.com')", json!("/")),
        (
            "uriPathAndQuery('https://www.contoso.com/catalog/shownew.htm?date=today')",
            json!("/catalog/shownew.htm?date=today"),
        ),
        ("uriPort('https://www.localhost:8080')", json!(8080)),
        ("uriPort('https://www.localhost')", json!(443)),
        ("uriQuery('https://www.contoso.com/catalog/shownew.htm?date=today')", json!("?date=today")),
        ("uriScheme('https://www.contoso.com/catalog/shownew.htm?date=today')", json!("https")),
    ]);
    check_errors(&[("uriHost('not a uri')", "not an absolute URI")]);
}

#[test]
fn json_manipulation_functions() {
    check_table(&[
        (
            "addProperty(json('{ \"firstName\": \"Sophia\", \"lastName\": \"Owen\" }'), 'middleName', 'Anne')",
            json!({"firstName": "Sophia", "lastName": "Owen", "middleName": "Anne"}),
        ),
        ("coalesce(null, true, false)", json!(true)),
        ("coalesce(null, 'hello', 'world')", json!("hello")),
        ("coalesce(null, null, null)", json!(null)),
        ("coalesce('', 'x')", json!("")),
        (
            "removeProperty(json('{ \"firstName\": \"Sophia\", \"middleName\": \"Anne\", \"surName\": \"Owen\" }'), 'middleName')",
            json!({"firstName": "Sophia", "surName": "Owen"}),
        ),
        ("removeProperty(json('{\"a\": 1}'), 'b')", json!({"a": 1})),
        (
            "setProperty(json('{ \"firstName\": \"Sophia\", \"surName\": \"Owen\" }'), 'surName', 'Hartnett')",
            json!({"firstName": "Sophia", "surName": "Hartnett"}),
        ),
        ("setProperty(json('{}'), 'a', 1)", json!({"a": 1})),
    ]);
    check_errors(&[
        ("addProperty(json('{\"a\": 1}'), 'a', 2)", "already exists"),
        ("xpath(xml('<a/>'), '/a')", "not supported by coflow"),
    ]);
}

#[test]
fn jsonpath_selects_with_jsonpath_syntax() {
    let data = json!({"items": [{"id": 1, "ok": true}, {"id": 2, "ok": false}]});
    assert_eq!(
        eval_expression("jsonpath(triggerBody(), '$.items[*].id')", Some(data.clone()))
            .map_err(|e| e.message),
        Ok(json!([1, 2]))
    );
    assert_eq!(
        eval_expression("jsonpath(triggerBody(), '$.items[?@.ok == true].id')", Some(data))
            .map_err(|e| e.message),
        Ok(json!([1]))
    );
    let err = eval_expression("jsonpath(triggerBody(), '$[')", Some(json!({}))).unwrap_err();
    assert!(err.message.contains("not a valid JSONPath"), "{}", err.message);
}

#[test]
fn wrong_argument_counts_and_unknown_functions_are_errors() {
    let e = eval_expression("concat()", None).unwrap_err();
    assert!(e.message.contains("concat() takes at least 1 arguments, not 0"), "{}", e.message);
    let e = eval_expression("substring('a', 1, 2, 3)", None).unwrap_err();
    assert!(e.message.contains("takes 2 to 3 arguments"), "{}", e.message);
    let e = eval_expression("nosuch(1)", None).unwrap_err();
    assert!(e.message.contains("nosuch"), "{}", e.message);
}

// ---- missing properties -----------------------------------------------------------------

#[test]
fn a_missing_property_is_an_error_naming_it() {
    let data = json!({"customer": {"name": "Fabrikam", "city": null}});
    for expr in [
        "triggerBody().customer.phone",
        "triggerBody()['customer']['phone']",
        "concat('x', triggerBody().customer.phone)",
    ] {
        let err = eval_expression(expr, Some(data.clone())).unwrap_err();
        assert!(err.message.contains("property 'phone' doesn't exist"), "{expr}: {}", err.message);
        assert!(err.message.contains("opt("), "{expr}: {}", err.message);
        assert_eq!(err.source_text.as_deref(), Some(expr));
    }
    let err = eval_expression("triggerBody().missing ~ 'x'", Some(data.clone())).unwrap_err();
    assert!(err.message.contains("'missing'"), "{}", err.message);
    let err = eval_expression("createArray(1, 2)[5]", None).unwrap_err();
    assert!(err.message.contains("index 5 is outside the array"), "{}", err.message);
}

#[test]
fn opt_is_the_null_safe_form() {
    let data = json!({"customer": {"name": "Fabrikam", "city": null}, "list": [10, 20]});
    let cases = [
        ("opt(triggerBody(), 'customer', 'name')", json!("Fabrikam")),
        ("opt(triggerBody(), 'customer', 'phone')", json!(null)),
        ("opt(triggerBody(), 'customer', 'city', 'zip')", json!(null)),
        ("opt(triggerBody(), 'nothing', 'deeper')", json!(null)),
        ("opt(triggerBody(), 'list', 1)", json!(20)),
        ("opt(triggerBody(), 'list', 7)", json!(null)),
        ("coalesce(opt(triggerBody(), 'customer', 'phone'), 'n/a')", json!("n/a")),
        ("empty(opt(triggerBody(), 'customer', 'phone'))", json!(true)),
    ];
    for (expr, expected) in cases {
        assert_eq!(eval_expression(expr, Some(data.clone())).map_err(|e| e.message), Ok(expected), "{expr}");
    }
    let err = eval_expression("opt('text', 'x')", None).unwrap_err();
    assert!(err.message.contains("not supported on values of type 'String'"), "{}", err.message);
}

#[test]
fn power_automate_null_safe_access_translates_to_opt() {
    let data = json!({"a": {"b": 1}});
    assert_eq!(pa_eval("triggerBody()?['a']?['b']", data.clone()), Ok(json!(1)));
    assert_eq!(pa_eval("triggerBody()?['x']?['y']", data.clone()), Ok(json!(null)));
    assert_eq!(pa_eval("coalesce(triggerBody()?['x'], 'default')", data.clone()), Ok(json!("default")));
    assert_eq!(pa_eval("trigger().outputs?.body?.a.b", data.clone()), Ok(json!(1)));
    let err = pa_eval("triggerBody()['x']", data).unwrap_err();
    assert!(err.contains("property 'x' doesn't exist"), "{err}");
}

// ---- workflow functions -----------------------------------------------------------------

#[derive(Debug)]
struct TestScope {
    mappings: Option<Mappings>,
}

impl Scope for TestScope {
    fn trigger(&self) -> Arc<Value> {
        Arc::new(json!({"headers": {"x-ms-id": "abc"}, "body": {"referral_id": "r-1", "$formdata": [
            {"key": "feedUrl", "value": "https://feeds.example.com/a.xml"},
            {"key": "tag", "value": "one"}, {"key": "tag", "value": "two"}
        ]}}))
    }
    fn action(&self, name: &str) -> Option<Arc<Value>> {
        let record = match name {
            "get_user" => Some(json!({"name": "get_user", "status": "succeeded",
                "outputs": {"statusCode": 200, "headers": {}, "body": {"status": "Succeeded", "id": 7}}})),
            "compose" => {
                Some(json!({"name": "compose", "status": "succeeded", "outputs": [1, 2], "body": [1, 2]}))
            }
            "send" => Some(json!({"name": "send", "status": "succeeded",
                "outputs": {"body": {"$formdata": [{"key": "Subject", "value": "Hello world"}]}}})),
            _ => None,
        };
        record.map(Arc::new)
    }
    fn variable(&self, name: &str) -> Option<Value> {
        (name == "numItems").then(|| json!(20))
    }
    fn parameter(&self, name: &str) -> Option<Value> {
        (name == "fullName").then(|| json!("Sophia Owen"))
    }
    fn item(&self, loop_name: Option<&str>) -> Option<Value> {
        match loop_name {
            None => Some(json!({"body": "inner"})),
            Some("outer") => Some(json!("outer-item")),
            Some(_) => None,
        }
    }
    fn iteration_index(&self, loop_name: &str) -> Option<usize> {
        (loop_name == "until_done").then_some(3)
    }
    fn result(&self, container: &str) -> Option<Value> {
        (container == "try").then(|| json!([{"name": "get_user", "status": "Failed", "code": "NotFound"}]))
    }
    fn workflow(&self) -> Value {
        json!({"name": "pc-to-sf", "run": {"name": "run-42"}, "tags": {"flowDisplayName": "PC to SF"}})
    }
    fn mappings(&self) -> Option<&Mappings> {
        self.mappings.as_ref()
    }
}

fn in_scope(expr: &str) -> Result<Value, String> {
    let scope: Arc<dyn Scope> = Arc::new(TestScope { mappings: None });
    let ours = pa::translate_expression(expr).map_err(|e| e.message)?;
    compile(&json!(format!("{{{{ {ours} }}}}"))).map_err(|e| e.message)?.render(&scope).map_err(|e| e.message)
}

#[test]
fn workflow_functions_read_the_scope() {
    let cases = [
        ("trigger().outputs.headers['x-ms-id']", json!("abc")),
        ("triggerOutputs()['headers']['x-ms-id']", json!("abc")),
        ("triggerBody()['referral_id']", json!("r-1")),
        ("triggerFormDataValue('feedUrl')", json!("https://feeds.example.com/a.xml")),
        ("triggerFormDataMultiValues('tag')", json!(["one", "two"])),
        ("actions('get_user').outputs.body.status", json!("Succeeded")),
        ("body('get_user')['id']", json!(7)),
        ("outputs('get_user')['statusCode']", json!(200)),
        ("outputs('compose')", json!([1, 2])),
        ("body('compose')", json!([1, 2])),
        ("formDataValue('send', 'Subject')", json!("Hello world")),
        ("formDataMultiValues('send', 'Subject')", json!(["Hello world"])),
        ("item().body", json!("inner")),
        ("items('outer')", json!("outer-item")),
        ("iterationIndexes('until_done')", json!(3)),
        ("variables('numItems')", json!(20)),
        ("parameters('fullName')", json!("Sophia Owen")),
        ("result('try')[0]['code']", json!("NotFound")),
        ("workflow().run.name", json!("run-42")),
        ("workflow()['tags']['flowDisplayName']", json!("PC to SF")),
    ];
    for (expr, expected) in cases {
        assert_eq!(in_scope(expr), Ok(expected), "{expr}");
    }
}

#[test]
fn workflow_functions_fail_clearly() {
    let cases = [
        ("body('nope')", "the action 'nope' has not run"),
        ("variables('nope')", "variable 'nope' is not initialized"),
        ("parameters('nope')", "no parameter 'nope'"),
        ("items('nope')", "only available inside the loop 'nope'"),
        ("iterationIndexes('nope')", "only available inside the loop 'nope'"),
        ("result('nope')", "result('nope')"),
        ("triggerFormDataValue('tag')", "more than one value"),
        ("action()", "not supported by coflow"),
        ("listCallbackUrl()", "not supported by coflow"),
        ("multipartBody('a', 0)", "not supported by coflow"),
        ("triggerMultipartBody(0)", "not supported by coflow"),
    ];
    for (expr, wanted) in cases {
        let err = in_scope(expr).unwrap_err();
        assert!(err.contains(wanted), "{expr}: {err}");
    }
    let err = eval_expression("item()", None).unwrap_err();
    assert!(err.message.contains("only available inside a foreach"), "{}", err.message);
}

// ---- secrets ----------------------------------------------------------------------------

#[test]
fn redaction_masks_every_revealed_value() {
    secrets::register("s3cr3t-token-value");
    assert_eq!(secrets::redact("Authorization: Bearer s3cr3t-token-value."), "Authorization: Bearer ***.");
    let mut record = json!({"headers": {"auth": "s3cr3t-token-value"}, "list": ["x s3cr3t-token-value y", 1], "other": "fine"});
    secrets::redact_value(&mut record);
    assert_eq!(record, json!({"headers": {"auth": "***"}, "list": ["x *** y", 1], "other": "fine"}));
    assert_eq!(secrets::redact("ab"), "ab");
}

#[test]
fn errors_do_not_leak_revealed_secrets() {
    secrets::register("leaky-secret-9876");
    let err = eval_expression("int('leaky-secret-9876')", None).unwrap_err();
    assert!(!err.message.contains("leaky-secret-9876"), "{}", err.message);
    assert!(err.message.contains("***"), "{}", err.message);
}

fn secrets_file(name: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("coflow-expr-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn secret_reads_the_environment_and_output_is_redacted() {
    let (ok, out, err) = run_eval(
        &["concat('value=', secret('COFLOW_TEST_SECRET'))"],
        &[("COFLOW_TEST_SECRET", "env-secret-1234")],
    );
    assert!(ok, "{err}");
    assert_eq!(out, r#""value=***""#);
    let (ok, _, err) = run_eval(&["secret('COFLOW_TEST_UNSET_SECRET')"], &[]);
    assert!(!ok);
    assert!(err.contains("secret 'COFLOW_TEST_UNSET_SECRET' is not set"), "{err}");
}

#[test]
fn secret_reads_a_private_file_in_either_format() {
    for (file, text) in [
        ("env.txt", "# test\nFILE_SECRET=file-secret-5678\n"),
        ("secrets.yaml", "FILE_SECRET: file-secret-5678\n"),
    ] {
        let path = secrets_file(file, text, 0o600);
        let path_text = path.to_string_lossy().into_owned();
        let (ok, out, err) =
            run_eval(&["length(secret('FILE_SECRET'))"], &[("COFLOW_SECRETS_FILE", path_text.as_str())]);
        assert!(ok, "{file}: {err}");
        assert_eq!(out, "16", "{file}");
        let (ok, out, _) =
            run_eval(&["secret('FILE_SECRET')"], &[("COFLOW_SECRETS_FILE", path_text.as_str())]);
        assert!(ok);
        assert_eq!(out, r#""***""#);
        let entries = secrets::read_file(&path).expect("readable");
        assert_eq!(entries.get("FILE_SECRET").map(String::as_str), Some("file-secret-5678"));
    }
}

#[test]
fn a_secrets_file_readable_by_others_is_refused() {
    let path = secrets_file("open.env", "OPEN_SECRET=open-secret-0000\n", 0o644);
    let err = secrets::read_file(&path).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    let path_text = path.to_string_lossy().into_owned();
    let (ok, _, stderr) =
        run_eval(&["secret('OPEN_SECRET')"], &[("COFLOW_SECRETS_FILE", path_text.as_str())]);
    assert!(!ok);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("open-secret-0000"), "{stderr}");
}

// ---- mappings ---------------------------------------------------------------------------

#[test]
fn a_mapping_renders_a_referral_into_opportunity_fields() {
    let mappings = Mappings::load_dir(&fixture("mappings")).expect("mappings load");
    let m = mappings.get("referral_to_opportunity").expect("by file name");
    assert_eq!(m.target.as_deref(), Some("Opportunity"));
    assert_eq!(m.field_names().count(), 15);
    let out = m.render(&referral(), None).expect("renders");
    assert_eq!(out["Name"], json!("Fabrikam - Sentinel rollout"));
    assert_eq!(out["Amount"], json!(120000));
    assert_eq!(out["CloseDate"], json!("2024-06-30"));
    assert_eq!(out["StageName"], json!("Qualification"));
    assert_eq!(out["Customer_City__c"], json!("Seattle"));
    assert_eq!(out["Primary_Contact__c"], json!("Dana Reyes"));
    // expirationDateTime is null in the referral: the field is left out, not sent as null.
    assert!(out.get("Expiration_Date__c").is_none(), "{out}");
    assert_eq!(out.as_object().map(|o| o.len()), Some(14));
}

#[test]
fn explicit_nulls_are_kept_and_lookup_defaults_apply() {
    let m = Arc::new(Mappings::load_named(&fixture("mappings"), "contact_fields").expect("loads"));
    let contact = json!({"firstName": "Dana", "lastName": "Reyes", "title": null, "email": "Dana@X.com"});
    let out = m.render(&contact, None).expect("renders");
    assert_eq!(
        out,
        json!({"FirstName": "Dana", "LastName": "Reyes", "Fax": null, "Email": "dana@x.com", "Locale": "en_US"})
    );
    let french = json!({"firstName": "A", "lastName": "B", "title": "CEO", "email": "a@b", "contactPreference": {"locale": "fr-FR"}});
    assert_eq!(m.render(&french, None).expect("renders")["Locale"], json!("fr_FR"));
}

#[test]
fn mapping_errors_name_file_field_and_line() {
    let err = Mapping::load(&fixture("broken/bad_template.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bad_template.yaml:4"), "{text}");
    assert!(text.contains("field 'Amount'"), "{text}");
    let err = Mapping::load(&fixture("broken/bad_shape.yaml")).unwrap_err();
    assert!(err.to_string().contains("bad_shape.yaml:"), "{err}");
    assert!(
        matches!(Mappings::load_dir(&fixture("broken")), Err(MappingError::Several(list)) if list.len() == 2)
    );
    let err = Mappings::load_named(&fixture("mappings"), "nope").unwrap_err();
    assert!(err.to_string().contains("nope.yaml"), "{err}");
}

#[test]
fn a_mapping_field_error_names_mapping_and_field() {
    let m = Arc::new(
        Mapping::parse("m", "fields:\n  Name: '{{ source.missing }}'\n", Path::new("m.yaml"))
            .expect("compiles"),
    );
    let err = m.render(&json!({"present": 1}), None).unwrap_err();
    assert!(err.message.contains("mapping 'm' field 'Name'"), "{}", err.message);
    assert!(err.message.contains("'missing'"), "{}", err.message);
    let m = Arc::new(
        Mapping::parse(
            "m",
            "fields:\n  S: \"{{ lookup('t', source.k) }}\"\nlookups:\n  t: {a: 1}\n",
            Path::new("m.yaml"),
        )
        .expect("compiles"),
    );
    assert_eq!(m.render(&json!({"k": "a"}), None).expect("found")["S"], json!(1));
    let err = m.render(&json!({"k": "b"}), None).unwrap_err();
    assert!(err.message.contains("no entry 'b'"), "{}", err.message);
}

#[test]
fn the_mapping_function_applies_a_mapping_file() {
    let mappings = Mappings::load_dir(&fixture("mappings")).expect("load");
    let scope: Arc<dyn Scope> = Arc::new(TestScope { mappings: Some(mappings) });
    let template = compile(&json!({"record": "{{ mapping('referral_to_opportunity', triggerBody()) }}"}));
    // The trigger body is not a referral: the first field fails and says where.
    let err = template.expect("compiles").render(&scope).unwrap_err();
    assert!(err.message.contains("mapping 'referral_to_opportunity' field 'Name'"), "{}", err.message);
    let t = compile(&json!("{{ mapping('contact_fields', json('{\"firstName\": \"A\", \"lastName\": \"B\", \"title\": null, \"email\": \"E\"}')) }}"))
        .expect("compiles");
    assert_eq!(
        t.render(&scope).expect("renders"),
        json!({"FirstName": "A", "LastName": "B", "Fax": null, "Email": "e", "Locale": "en_US"})
    );
    let err = compile(&json!("{{ mapping('nope', 1) }}")).expect("compiles").render(&scope).unwrap_err();
    assert!(err.message.contains("no mapping 'nope'"), "{}", err.message);
}

// ---- the Power Automate translator ------------------------------------------------------

#[test]
fn translated_values_render_to_the_documented_results() {
    let scope: Arc<dyn Scope> = Arc::new(DataScope { body: json!({"myAge": 42, "name": "Sophia Owen"}) });
    let cases = [
        ("Sophia Owen", json!("Sophia Owen")),
        ("@triggerBody()?['myAge']", json!(42)),
        ("@{triggerBody()?['myAge']}", json!("42")),
        ("My age is @{triggerBody()?['myAge']}", json!("My age is 42")),
        ("@@", json!("@")),
        (" @", json!(" @")),
        ("My age is @@{triggerBody()?['myAge']}", json!("My age is @{triggerBody()?['myAge']}")),
        ("mail sophia@contoso.com", json!("mail sophia@contoso.com")),
        ("@concat('List_to-do''s', ' ', triggerBody()?['name'])", json!("List_to-do's Sophia Owen")),
        ("@if(equals(triggerBody()?['myAge'], 42), 'yes', 'no')", json!("yes")),
        ("@and(greater(triggerBody()?['myAge'], 1), not(equals(1, 2)))", json!(true)),
        ("@or(false, null)", json!(null)),
        ("literal {{ braces }} and @{add(1, 2)}", json!("literal {{ braces }} and 3")),
        ("@UTCNOW('yyyy') ", json!(null)),
        ("@json('{\"a\": [1, 2]}')?['a'][1]", json!(2)),
        ("@{toUpper('x')}-@{toLower('Y')}", json!("X-y")),
        ("@{createArray(1, 'a')}", json!(r#"[1,"a"]"#)),
    ];
    for (pa_value, expected) in cases {
        let ours = match pa::translate_value(pa_value) {
            Ok(t) => t,
            Err(e) => panic!("{pa_value}: {e}"),
        };
        let result = compile(&json!(ours)).and_then(|t| t.render(&scope));
        match (pa_value, result) {
            ("@or(false, null)", Err(e)) => assert!(e.message.contains("must be a boolean"), "{}", e.message),
            ("@UTCNOW('yyyy') ", Ok(v)) => assert_eq!(v.as_str().map(str::len), Some(4), "{v}"),
            (_, Ok(v)) => assert_eq!(v, expected, "{pa_value} → {ours}"),
            (_, Err(e)) => panic!("{pa_value} → {ours}: {}", e.message),
        }
    }
}

#[test]
fn translation_output_is_readable() {
    let cases = [
        ("@concat('a', triggerBody()?['x'])", "{{ concat('a', opt(triggerBody(), 'x')) }}"),
        ("@body('Get_items')?['value']", "{{ opt(body('Get_items'), 'value') }}"),
        ("@outputs('Get_record')?['body/Name']", "{{ opt(outputs('Get_record'), 'body', 'Name') }}"),
        ("@items('Apply_to_each')['id']", "{{ items('Apply_to_each').id }}"),
        ("@variables('x')['with space']", "{{ variables('x')['with space'] }}"),
        ("@equals(null, '')", "{{ equals(none, '') }}"),
        ("@add(.5, -1)", "{{ add(0.5, -1) }}"),
        ("Total: @{div(10, 3)} units", "Total: {{ div(10, 3) }} units"),
        ("@replace('a\\b', '\\', '/')", r"{{ replace('a\\b', '\\', '/') }}"),
    ];
    for (pa_value, expected) in cases {
        assert_eq!(
            pa::translate_value(pa_value).map_err(|e| e.message),
            Ok(expected.to_string()),
            "{pa_value}"
        );
    }
}

#[test]
fn malformed_power_automate_expressions_report_positions() {
    let cases = [
        ("@concat('a', 'b'", "at position 17"),
        ("@concat('a)", "at position 9"),
        ("@concat('a' 'b')", "at position 13"),
        ("@foo(1)", "unknown function 'foo'"),
        ("@triggerBody()?x", "expected '.' or '[' after '?'"),
        ("@triggerBody()[", "at position 16"),
        ("x @{concat('a'} y", "at position"),
        ("x @{concat('a') y", "expected '}' to close"),
        ("@name", "is not a function call"),
        ("@add(1, 2) extra", "after the end of the expression"),
    ];
    for (pa_value, wanted) in cases {
        let err = pa::translate_value(pa_value).unwrap_err();
        assert!(err.message.contains(wanted), "{pa_value}: {}", err.message);
        assert_eq!(err.source_text.as_deref(), Some(pa_value));
    }
}

// ---- coflow eval ------------------------------------------------------------------------

#[test]
fn coflow_eval_prints_json() {
    assert_eq!(
        run_eval(&["--pa", "concat('Hello', 'World')"], &[]),
        (true, r#""HelloWorld""#.into(), String::new())
    );
    assert_eq!(run_eval(&["--pa", "add(1, 2)"], &[]), (true, "3".into(), String::new()));
    assert_eq!(run_eval(&["--pa", "@add(1, 2)"], &[]).1, "3");
    assert_eq!(run_eval(&["1 + 2 * 3"], &[]).1, "7");
    let (ok, out, _) = run_eval(&["--pa", "triggerBody()?['a']", "--data", r#"{"a": {"b": [1, 2]}}"#], &[]);
    assert!(ok);
    assert_eq!(out, r#"{"b":[1,2]}"#);
}

#[test]
fn coflow_eval_fails_with_the_error() {
    let (ok, out, err) = run_eval(&["--pa", "int('abc')"], &[]);
    assert!(!ok && out.is_empty());
    assert!(err.contains("'abc' cannot be converted to an integer"), "{err}");
    let (ok, _, err) = run_eval(&["x", "--data", "{not json"], &[]);
    assert!(!ok);
    assert!(err.contains("--data is not valid JSON"), "{err}");
    let (ok, _, err) = run_eval(&["--pa", "concat('a'"], &[]);
    assert!(!ok);
    assert!(err.contains("at position"), "{err}");
}

//! Which keys may `carol` use for `EncryptWithKey`? The query plan answers with one SQL query over a SQLite
//! table of keys, and the same list computed by calling `Authorize` (`Engine::decide`) on every row is printed
//! beside it. The two must agree: the example exits with status 1 if they do not.
//!
//! ```sh
//! cargo run --example plan-sqlite
//! ```
//!
//! The table follows the plan's SQL mapping: `uri` and `owner` columns, a scalar column `alg`, and a JSON column
//! `attributes` with the rest (`permissions`, `global`, ...).

use arbiter::{Engine, PlanRequest, Request, SqlMapping};
use rusqlite::types::Value as Sql;
use serde_json::{json, Value};

/// (name, owner, alg, attributes as JSON)
const KEYS: &[(&str, &str, &str, &str)] = &[
    (
        "payroll-kek",
        "bob",
        "AES",
        r#"{"permissions": {"EncryptWithKey": ["hr"]}}"#,
    ),
    ("carol-own", "carol", "AES", r#"{}"#),
    ("shared-global", "dave", "AES", r#"{"global": true}"#),
    (
        "ops-only",
        "bob",
        "RSA",
        r#"{"permissions": {"EncryptWithKey": ["ops"]}}"#,
    ),
    (
        "hr-but-decrypt",
        "bob",
        "AES",
        r#"{"permissions": {"DecryptWithKey": ["hr"]}}"#,
    ),
    (
        "hr-as-text",
        "bob",
        "AES",
        r#"{"permissions": {"EncryptWithKey": "hr"}}"#,
    ),
    ("no-attributes", "erin", "AES", r#"null"#),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))?;

    let db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch("CREATE TABLE keys (uri TEXT, owner TEXT, alg TEXT, attributes TEXT)")?;
    for (name, owner, alg, attributes) in KEYS {
        let attributes = match *attributes {
            "null" => Sql::Null,
            text => Sql::Text(text.into()),
        };
        db.execute(
            "INSERT INTO keys VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                format!("kylo:kylo:vault:keys:{name}"),
                owner,
                alg,
                attributes
            ],
        )?;
    }

    // carol is in group `hr`; the default pack lets her use keys she owns and keys that grant `hr` the action.
    let carol = Request::builder("carol")
        .group("hr")
        .action("EncryptWithKey")
        .build()?;
    let plan = engine.plan(&PlanRequest::new(carol.clone(), ["EncryptWithKey"]));
    let mapping = SqlMapping {
        columns: [("alg".to_string(), "alg".to_string())].into(),
        ..SqlMapping::default()
    };
    let sql = plan.to_sql(&mapping)?;
    println!("plan: {}", plan.kind.as_str());
    println!("filter: {}", plan.filter.to_json());
    println!("WHERE {}", sql.where_clause);
    println!("params: {}\n", Value::from(sql.params.clone()));

    // One query.
    let query = format!(
        "SELECT uri, owner, alg, attributes FROM keys WHERE {} ORDER BY uri",
        sql.where_clause
    );
    let params: Vec<Sql> = sql
        .params
        .iter()
        .map(|p| match p {
            Value::String(s) => Sql::Text(s.clone()),
            Value::Number(n) => Sql::Real(n.as_f64().unwrap_or(f64::NAN)),
            other => Sql::Text(other.to_string()),
        })
        .collect();
    let mut by_plan = Vec::new();
    let mut stmt = db.prepare(&query)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    while let Some(row) = rows.next()? {
        let resource = resource_of(row)?;
        // A plan with residual conditions (instants, CIDRs...) is checked per returned row.
        if sql.exact || plan.allows(&resource_request(&resource)?.resource) {
            by_plan.push(resource["uri"].as_str().unwrap_or("").to_string());
        }
    }

    // The same question, one Authorize per row.
    let mut by_authorize = Vec::new();
    let mut stmt = db.prepare("SELECT uri, owner, alg, attributes FROM keys ORDER BY uri")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let resource = resource_of(row)?;
        let mut request = resource_request(&resource)?;
        request.principal = carol.principal.clone();
        request.action = "EncryptWithKey".into();
        if engine.decide(&request).allowed {
            by_authorize.push(resource["uri"].as_str().unwrap_or("").to_string());
        }
    }

    println!("{:<40} by Authorize per row", "by the plan's SQL");
    for i in 0..by_plan.len().max(by_authorize.len()) {
        let cell = |v: &Vec<String>| v.get(i).cloned().unwrap_or_default();
        println!("{:<40} {}", cell(&by_plan), cell(&by_authorize));
    }
    if by_plan != by_authorize {
        eprintln!("\nthe plan and Authorize disagree");
        std::process::exit(1);
    }
    println!("\nsame {} keys", by_plan.len());
    Ok(())
}

/// A row as the resource JSON of a request, by the mapping: the JSON column, and the mapped column.
fn resource_of(row: &rusqlite::Row) -> Result<Value, Box<dyn std::error::Error>> {
    let mut attributes: serde_json::Map<String, Value> = match row.get::<_, Option<String>>(3)? {
        Some(text) => serde_json::from_str(&text)?,
        None => Default::default(),
    };
    // `alg` is mapped to a column: it is read from the column only.
    attributes.remove("alg");
    if let Some(alg) = row.get::<_, Option<String>>(2)? {
        attributes.insert("alg".into(), Value::String(alg));
    }
    Ok(
        json!({"uri": row.get::<_, String>(0)?, "owner": row.get::<_, String>(1)?, "attributes": attributes}),
    )
}

fn resource_request(resource: &Value) -> Result<Request, arbiter::RequestError> {
    Request::from_json(json!({"principal": {"id": "-"}, "action": "-", "resource": resource}))
}

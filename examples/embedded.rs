//! Arbiter embedded in a Rust service: load the shipped policy pack, build requests without JSON, decide (also
//! from borrowed data), explain a denial, and check a proposed change with the lockout simulator.
//!
//! Run: `cargo run --example embedded`

use std::time::Duration;

use arbiter::{Engine, Request, RequestRef, SimulateOptions};

fn main() -> Result<(), arbiter::Error> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let engine = Engine::from_dir(dir)?;
    println!(
        "loaded {} policies (revision {})",
        engine.policy_count(),
        engine.revision()
    );

    // Bob owns key k2 and grants group `hr` encryption; carol is in `hr`, eve is not.
    let key = |who: &str| {
        Request::builder(who)
            .group(if who == "carol" { "hr" } else { "sales" })
            .action("EncryptWithKey")
            .resource("kylo:kylo:vault:keys:k2")
            .owner("bob")
            .resource_attribute("permissions", serde_json::json!({"EncryptWithKey": ["hr"]}))
            .build()
    };
    for who in ["bob", "carol", "eve"] {
        let d = engine.decide(&key(who)?);
        println!(
            "{who:>5} EncryptWithKey k2: {} ({}) {:?}",
            d.decision_str(),
            d.reason.as_str(),
            d.policies
        );
    }

    // Carol's request again, as a `RequestRef` over data the service already holds (built inline here): Arbiter
    // copies none of it and applies the same checks.
    let permissions = serde_json::json!({"EncryptWithKey": ["hr"]});
    let attributes = serde_json::Map::from_iter([("permissions".to_string(), permissions)]);
    let groups = ["hr"];
    let borrowed = RequestRef {
        principal_id: "carol",
        groups: (&groups).into(),
        action: "EncryptWithKey",
        resource_uri: Some("kylo:kylo:vault:keys:k2"),
        resource_owner: Some("bob"),
        resource_attributes: Some(&attributes),
        ..RequestRef::default()
    };
    println!(
        "carol, borrowed: {}",
        engine.decide_ref(&borrowed)?.decision_str()
    );

    // Why eve is denied, condition by condition.
    let explained = engine.explain(&key("eve")?);
    println!(
        "explanation for eve: {}",
        serde_json::to_string(&explained.explanation).unwrap_or_default()
    );

    // One batch, one "now".
    let batch = engine.decide_batch(&[key("bob")?, key("carol")?]);
    println!(
        "batch: {:?}",
        batch.iter().map(|d| d.allowed).collect::<Vec<_>>()
    );

    // A proposed change that would lock the admins out, caught before it goes live.
    let mut proposed: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(dir)
        .expect("policies/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    proposed.push((
        "freeze.yaml".into(),
        "kind: Policy\nid: freeze\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\n---\n\
         kind: PolicyAttachment\nid: freeze\npolicy: freeze\nprincipal_selector: {groups: [admin]}\n"
            .into(),
    ));
    let options = SimulateOptions {
        as_of: arbiter::Moment::now(),
        budget: Duration::from_secs(10),
        superuser: Some(arbiter::DEFAULT_SUPERUSER.into()),
    };
    let report = arbiter::simulate(Some(&engine), proposed, &options);
    println!(
        "simulate: exit {}, {} lockout(s): {}",
        report.exit_code(),
        report.summary.lockouts,
        report
            .lockouts
            .first()
            .map(|f| f.message.as_str())
            .unwrap_or("none")
    );
    Ok(())
}

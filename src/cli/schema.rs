//! `arbiter schema`: the JSON Schema (draft 2020-12) of policy-file documents, for editors (the YAML language
//! server) and CI. The schema lives in `schema/policy.schema.json`; the binary carries it.

/// The schema, as shipped in `schema/policy.schema.json`.
pub const POLICY_SCHEMA: &str = include_str!("../../schema/policy.schema.json");

pub fn run() -> i32 {
    super::print_out(POLICY_SCHEMA);
    super::EXIT_OK
}

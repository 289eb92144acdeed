//! A minimal tonic client for `arbiter serve`: one `Authorize` call on 127.0.0.1:50051.
//!
//! ```sh
//! cargo run --release -- serve &              # serves the shipped policies/
//! cargo run --example client                  # or: cargo run --example client -- http://127.0.0.1:50051
//! ```

use arbiter::proto::authorizer_client::AuthorizerClient;
use arbiter::proto::{AuthorizeRequest, Decision, Environment, Principal, Resource};
use prost_types::value::Kind;
use prost_types::{Struct, Value};

fn strukt(fields: impl IntoIterator<Item = (&'static str, Value)>) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_string());
    let mut client = AuthorizerClient::connect(addr).await?;

    // carol (group hr) encrypts with bob's key k2, whose permissions grant EncryptWithKey to hr.
    let hr = Value {
        kind: Some(Kind::ListValue(prost_types::ListValue {
            values: vec![Value {
                kind: Some(Kind::StringValue("hr".into())),
            }],
        })),
    };
    let permissions = Value {
        kind: Some(Kind::StructValue(strukt([("EncryptWithKey", hr)]))),
    };
    let request = AuthorizeRequest {
        principal: Some(Principal {
            id: "carol".into(),
            groups: vec!["hr".into()],
            attributes: None,
            token: String::new(),
        }),
        action: "EncryptWithKey".into(),
        resource: Some(Resource {
            uri: "kylo:kylo:vault:keys:k2".into(),
            owner: "bob".into(),
            attributes: Some(strukt([("permissions", permissions)])),
        }),
        environment: Some(Environment {
            time: None, // now
            source_ip: "10.1.2.3".into(),
            port: 443,
            attributes: None,
        }),
        explain: false,
    };

    let response = client.authorize(request).await?.into_inner();
    let decision = if response.decision == Decision::Allow as i32 {
        "ALLOW"
    } else {
        "DENY"
    };
    println!(
        "{decision} reason={} policies={:?} revision={} call_id={}",
        response.reason, response.policies, response.revision, response.call_id
    );
    Ok(())
}

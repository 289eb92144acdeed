//! Fuzz target: protobuf bytes decoded into `AuthorizeRequest` / `AuthorizeBatchRequest` and converted into
//! domain requests, as the gRPC edge does.
#![no_main]

use arbiter::server::convert::{AuthorizeInput, BatchInput};
use arbiter::server::proto::{AuthorizeBatchRequest, AuthorizeRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = AuthorizeRequest::decode(data) {
        let _ = AuthorizeInput::try_from(msg);
    }
    if let Ok(msg) = AuthorizeBatchRequest::decode(data) {
        let _ = BatchInput::try_from(msg);
    }
});

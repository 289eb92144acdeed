//! The gRPC codec of `arbiter.v1.Authorizer`: prost encoding and decoding, except that a message that does not
//! decode (invalid UTF-8 in a string field, a truncated field) is the caller's fault: `INVALID_ARGUMENT` naming
//! the message, never `INTERNAL`.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// prost encoding; decoding errors become `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ArbiterCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ArbiterCodec<T, U> {
    fn default() -> Self {
        ArbiterCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for ArbiterCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ArbiterDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ArbiterDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// Decodes with prost and names the message in a decoding error.
#[derive(Debug)]
pub struct ArbiterDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ArbiterDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(buf)
            .map_err(|status| decode_error::<U>(status.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status for a message `U` that did not decode: a hostile nesting names the attribute map at fault,
/// anything else names the message.
pub(crate) fn decode_error<U>(message: &str) -> Status {
    if message.contains("recursion limit reached") {
        return Status::invalid_argument(format!(
            "{}: nested too deeply (more than {} levels)",
            nested_field(message),
            crate::request::MAX_ATTRIBUTE_DEPTH
        ));
    }
    let name = std::any::type_name::<U>()
        .rsplit("::")
        .next()
        .unwrap_or("message");
    Status::invalid_argument(format!("{name}: {message}"))
}

/// Names the attribute map from prost's decode-error stack (`Message.field: ...`).
fn nested_field(message: &str) -> &'static str {
    let checks = message.contains("AuthorizeBatchRequest.checks") || message.contains("Check.");
    if message.contains("Principal.attributes") {
        "principal.attributes"
    } else if message.contains("Environment.attributes") {
        "environment.attributes"
    } else if message.contains("Resource.attributes") {
        if checks {
            "checks[].resource.attributes"
        } else {
            "resource.attributes"
        }
    } else {
        "request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::proto::AuthorizeRequest;
    use tonic::Code;

    #[test]
    fn decoding_errors_are_invalid_argument_naming_the_message_or_map() {
        let s = decode_error::<AuthorizeRequest>("failed to decode Protobuf message: Value.kind: Struct.fields: Principal.attributes: AuthorizeRequest.principal: recursion limit reached");
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("principal.attributes:"), "{s:?}");
        let s = decode_error::<AuthorizeRequest>(
            "failed to decode Protobuf message: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().starts_with("AuthorizeRequest: "), "{s:?}");
    }
}

//! Signing keys and tokens for the verified-token tests: EC and Ed25519 keys generated per test with `rcgen`,
//! RSA from a fixed test key in `tests/fixtures/jwt/` (the `ring` backend cannot generate RSA keys), JWKS
//! documents built from the public keys by the token crate, and claims with an expiry relative to now.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};

/// A private key with its algorithm, `kid` and public key (PEM).
pub struct Signer {
    pub alg: Algorithm,
    pub kid: String,
    pub key: EncodingKey,
    pub public_pem: String,
}

impl Signer {
    pub fn new(alg: Algorithm, kid: &str) -> Signer {
        let (key, public_pem) = match alg {
            Algorithm::RS256 | Algorithm::PS256 => {
                let dir =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
                let private = std::fs::read(dir.join("rsa-private.pem")).unwrap();
                (
                    EncodingKey::from_rsa_pem(&private).unwrap(),
                    std::fs::read_to_string(dir.join("rsa-public.pem")).unwrap(),
                )
            }
            _ => {
                let kind = match alg {
                    Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                    Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                    Algorithm::EdDSA => &rcgen::PKCS_ED25519,
                    other => panic!("no test key for {other:?}"),
                };
                let pair = rcgen::KeyPair::generate_for(kind).unwrap();
                let pem = pair.serialize_pem();
                let key = match alg.family() {
                    AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
                    _ => EncodingKey::from_ed_pem(pem.as_bytes()),
                }
                .unwrap();
                (key, pair.public_key_pem())
            }
        };
        Signer {
            alg,
            kid: kid.into(),
            key,
            public_pem,
        }
    }

    /// The public key as a JWK with `kid` and `alg`.
    pub fn jwk(&self) -> Jwk {
        let pem = self.public_pem.as_bytes();
        let public = match self.alg.family() {
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            _ => DecodingKey::from_rsa_pem(pem),
        }
        .unwrap();
        let mut jwk = Jwk::from_decoding_key(&public, Some(self.alg)).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A compact JWS of `claims`, with this key's `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// Signs with another header `kid` (or none).
    pub fn sign_with_kid(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// A JWKS document of the signers' public keys.
pub fn jwks(signers: &[&Signer]) -> String {
    serde_json::to_string(&JwkSet {
        keys: signers.iter().map(|s| s.jwk()).collect(),
    })
    .unwrap()
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Claims for `sub`, valid for five minutes, with `extra` merged in.
pub fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "iat": now(), "exp": now() + 300});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

/// A token with a header and payload of our choosing and a junk signature (`alg: none`, HMAC, ...).
pub fn unsigned(header: Value, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(&header), b64(claims))
}

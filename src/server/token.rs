//! Verified tokens (SPEC section 6): a compact JWS is checked against the keys of `--jwks` files and `--jwt-key`
//! PEM public keys, and its claims become the principal.
//!
//! - Accepted algorithms: RS256, PS256, ES256, ES384 and EdDSA. `none`, HMAC and every other algorithm are
//!   refused, whatever the keys say.
//! - `exp` is required; `exp`, `nbf`, `iss` (`--jwt-issuer`) and `aud` (`--jwt-audience`) are checked with
//!   `--jwt-leeway`.
//! - A token naming a `kid` is checked only against the keys with that `kid` (a PEM key's `kid` is its file name
//!   without the extension); a token without one against every key of its algorithm's family.
//! - Verified tokens are cached, bounded by bytes, until they expire; the cache is emptied when the keys change.
//! - Keys are re-read when their files change (see `keys::watch`); a bad file keeps the last good keys.
//!
//! Failures are [`TokenError`]s: the cause goes into the explanation and the decision log, never the token.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The algorithms a token may be signed with.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
/// The longest token read; longer ones are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default size of the verified-token cache.
pub const DEFAULT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How tokens are verified and read (the `--jwks`, `--jwt-*` flags).
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// JWKS documents (`{"keys": [...]}`).
    pub jwks: Vec<PathBuf>,
    /// PEM public keys (RSA, EC P-256/P-384, Ed25519); the file stem is the key's `kid`.
    pub pem_keys: Vec<PathBuf>,
    /// Accepted `iss` values; empty = not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty = not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim that becomes `principal.id` (a dotted path).
    pub id_claim: String,
    /// The claim that becomes `principal.groups` (a dotted path such as `cust.groups`).
    pub groups_claim: String,
    /// Size of the verified-token cache, in bytes of token and claims.
    pub cache_bytes: usize,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            jwks: Vec::new(),
            pem_keys: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            id_claim: "sub".into(),
            groups_claim: "groups".into(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl TokenSettings {
    /// Whether any key source is configured.
    pub fn enabled(&self) -> bool {
        !self.jwks.is_empty() || !self.pem_keys.is_empty()
    }

    /// Every key file, for the watch.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.jwks.iter().chain(&self.pem_keys).map(PathBuf::as_path)
    }
}

/// Why a token was not accepted. The text is the cause reported with reason `unauthenticated`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the server has no token keys (start it with --jwks or --jwt-key)")]
    NoKeys,
    #[error("no credentials: {0}")]
    NoCredentials(String),
    #[error("the token is not a compact JWS: {0}")]
    Malformed(String),
    #[error("algorithm `{0}` is refused (accepted: RS256, PS256, ES256, ES384, EdDSA)")]
    Algorithm(String),
    #[error("unknown kid `{0}`")]
    UnknownKid(String),
    #[error("no key for algorithm {0}")]
    NoKeyForAlgorithm(String),
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("missing claim `{0}`")]
    MissingClaim(String),
    #[error("claim `{claim}` {message}")]
    Claim { claim: String, message: String },
}

impl TokenError {
    /// A stable short name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::NoKeys => "no_keys",
            TokenError::NoCredentials(_) => "no_credentials",
            TokenError::Malformed(_) => "malformed",
            TokenError::Algorithm(_) => "algorithm",
            TokenError::UnknownKid(_) => "unknown_kid",
            TokenError::NoKeyForAlgorithm(_) => "no_key",
            TokenError::Signature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "wrong_issuer",
            TokenError::Audience => "wrong_audience",
            TokenError::MissingClaim(_) | TokenError::Claim { .. } => "bad_claims",
        }
    }
}

/// What a verified token says about its principal.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub id: String,
    pub groups: Vec<String>,
    /// Every other claim (the id claim, `groups` and the reserved `id` left out).
    pub attributes: Map<String, Value>,
    /// `exp`, in seconds since the epoch.
    pub expires: i64,
    /// `nbf`, in seconds since the epoch.
    pub not_before: Option<i64>,
    weight: usize,
}

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The keys read from every configured file, with a hash of their contents.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// SHA-256 of every file's bytes, in configuration order.
    pub revision: String,
}

impl KeySet {
    /// Reads every file; the first problem is an error naming the file (and the key's position in a JWKS).
    pub fn load(settings: &TokenSettings) -> Result<KeySet, String> {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut hash = Sha256::new();
        for path in &settings.jwks {
            let bytes = read(path)?;
            hash.update(&bytes);
            keys.extend(jwks_keys(path, &bytes, &mut skipped)?);
        }
        for path in &settings.pem_keys {
            let bytes = read(path)?;
            hash.update(&bytes);
            keys.push(pem_key(path, &bytes)?);
        }
        // A key Arbiter cannot use (another algorithm, an HMAC secret) is left out with a warning, so one odd key
        // in an identity provider's JWKS does not refuse the others. Files holding keys but none usable are an
        // error; an explicitly empty JWKS (`{"keys": []}`) is accepted: it revokes every key.
        if keys.is_empty() && !skipped.is_empty() {
            return Err(format!("no usable key: {}", skipped.join("; ")));
        }
        for why in &skipped {
            tracing::warn!("token key left out: {why}");
        }
        let revision = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(KeySet { keys, revision })
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn jwks_keys(path: &Path, bytes: &[u8], skipped: &mut Vec<String>) -> Result<Vec<Key>, String> {
    let at = |what: String| format!("{}: {what}", path.display());
    let set: JwkSet =
        serde_json::from_slice(bytes).map_err(|e| at(format!("not a JWKS document ({e})")))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        match jwk_key(jwk) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(why) => skipped.push(at(format!("keys[{i}]: {why}"))),
        }
    }
    Ok(keys)
}

/// One JWK as a verification key: `None` for an encryption key, an error saying why it cannot be used.
fn jwk_key(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Option<Key>, String> {
    let at = |what: &str| what.to_string();
    {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Ok(None); // An encryption key published beside the signing keys.
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![Algorithm::RS256, Algorithm::PS256],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => {
                    return Err(at(
                        "only the curves P-256 and P-384 are accepted for EC keys",
                    ))
                }
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Err(at("only Ed25519 is accepted for OKP keys")),
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err(at("symmetric (HMAC) keys are refused"));
            }
            _ => return Err(at("unknown key type")),
        };
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(alg) => {
                let alg = key_algorithm(alg)
                    .filter(|a| family.contains(a))
                    .ok_or_else(|| at("its `alg` is refused or does not fit the key type"))?;
                vec![alg]
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| at(&format!("unreadable key ({e})")))?;
        check_key(&key).map_err(|e| at(&e))?;
        Ok(Some(Key {
            kid: jwk.common.key_id.clone(),
            algorithms,
            key,
        }))
    }
}

/// EC points and Ed25519 keys of the wrong length are refused when read (an Ed25519 key shorter than 32 bytes
/// would otherwise fail only when a token is checked).
fn check_key(key: &DecodingKey) -> Result<(), String> {
    use jsonwebtoken::AlgorithmFamily;
    let len = key.try_get_as_bytes().map(<[u8]>::len);
    match (key.family(), len) {
        (AlgorithmFamily::Ec, Ok(65 | 97)) | (AlgorithmFamily::Ed, Ok(32)) => Ok(()),
        (AlgorithmFamily::Ec, _) => Err("not an uncompressed P-256 or P-384 point".into()),
        (AlgorithmFamily::Ed, _) => Err("an Ed25519 key is 32 bytes".into()),
        _ => Ok(()),
    }
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn pem_key(path: &Path, bytes: &[u8]) -> Result<Key, String> {
    let kid = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string);
    let (key, algorithms) = if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
        (k, vec![Algorithm::RS256, Algorithm::PS256])
    } else if let Ok(k) = DecodingKey::from_ec_pem(bytes) {
        // The uncompressed point: 65 bytes on P-256, 97 on P-384.
        let alg = match k.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => Algorithm::ES256,
            Ok(97) => Algorithm::ES384,
            _ => {
                return Err(format!(
                    "{}: only the curves P-256 and P-384 are accepted for EC keys",
                    path.display()
                ))
            }
        };
        (k, vec![alg])
    } else if let Ok(k) = DecodingKey::from_ed_pem(bytes) {
        (k, vec![Algorithm::EdDSA])
    } else {
        return Err(format!(
            "{}: not a PEM public key (RSA, EC P-256/P-384 or Ed25519)",
            path.display()
        ));
    };
    Ok(Key {
        kid,
        algorithms,
        key,
    })
}

#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<Box<str>, Arc<VerifiedToken>> for TokenWeight {
    fn weight(&self, key: &Box<str>, value: &Arc<VerifiedToken>) -> u64 {
        (key.len() + value.weight) as u64
    }
}

/// Verifies tokens against the current keys, with a bounded cache.
pub struct Verifier {
    settings: TokenSettings,
    keys: ArcSwap<KeySet>,
    cache: quick_cache::sync::Cache<Box<str>, Arc<VerifiedToken>, TokenWeight>,
    /// Bumped on every key change: a verification that started with older keys is not cached.
    generation: std::sync::atomic::AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

impl Verifier {
    /// Reads the keys; an error names the file.
    pub fn new(settings: TokenSettings) -> Result<Verifier, String> {
        let keys = KeySet::load(&settings)?;
        let estimated = (settings.cache_bytes / 2048).max(16);
        let cache = quick_cache::sync::Cache::with_weighter(
            estimated,
            settings.cache_bytes.max(1) as u64,
            TokenWeight,
        );
        Ok(Verifier {
            settings,
            keys: ArcSwap::from_pointee(keys),
            cache,
            generation: std::sync::atomic::AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The revision of the keys in use.
    pub fn keys_revision(&self) -> String {
        self.keys.load().revision.clone()
    }

    /// The last failed reload, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Re-reads the key files. On success the keys are swapped and the cache emptied (`Ok(true)` when they
    /// changed); on error the last good keys stay.
    pub fn reload(&self) -> Result<bool, String> {
        let outcome = KeySet::load(&self.settings);
        let result = match outcome {
            Ok(keys) => {
                let changed = keys.revision != self.keys.load().revision;
                if changed {
                    self.keys.store(Arc::new(keys));
                    self.generation
                        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    self.cache.clear();
                }
                Ok(changed)
            }
            Err(e) => Err(e),
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = result.as_ref().err().cloned();
        }
        result
    }

    /// Verifies `token` at `now` (seconds since the epoch) and reads its principal.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let leeway = self.settings.leeway.as_secs() as i64;
        if let Some(hit) = self.cache.get(token) {
            return fresh(hit, now, leeway);
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let verified = Arc::new(self.verify_uncached(token)?);
        let verified = fresh(verified, now, leeway)?;
        self.cache.insert(token.into(), verified.clone());
        // Keys changed meanwhile: this result may rest on a removed key, so it is not kept.
        if self.generation.load(std::sync::atomic::Ordering::Acquire) != generation {
            self.cache.remove(token);
        }
        Ok(verified)
    }

    fn verify_uncached(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let keys = self.keys.load();
        if keys.is_empty() {
            return Err(TokenError::NoKeys);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| header_error(token, &e))?;
        let alg = header.alg;
        if !ACCEPTED_ALGORITHMS.contains(&alg) {
            return Err(TokenError::Algorithm(format!("{alg:?}")));
        }
        let mut candidates = keys
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::UnknownKid(
                header.kid.clone().unwrap_or_default(),
            ));
        }
        let validation = self.validation(alg);
        let mut tried = false;
        for key in candidates.filter(|k| k.algorithms.contains(&alg)) {
            tried = true;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.principal(data.claims, token.len()),
                Err(e) => match claims_error(&e) {
                    // The signature held but a claim did not: no other key can change that.
                    Some(err) => return Err(err),
                    None => continue,
                },
            }
        }
        if tried {
            Err(TokenError::Signature)
        } else {
            Err(TokenError::NoKeyForAlgorithm(format!("{alg:?}")))
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.required_spec_claims = HashSet::from(["exp".to_string()]);
        if self.settings.issuers.is_empty() {
            v.iss = None;
        } else {
            v.set_issuer(&self.settings.issuers);
            v.required_spec_claims.insert("iss".into());
        }
        if self.settings.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.settings.audiences);
            v.required_spec_claims.insert("aud".into());
        }
        v
    }

    /// Claims to principal: the id claim, the groups claim, the rest as attributes.
    fn principal(
        &self,
        mut claims: Map<String, Value>,
        token_len: usize,
    ) -> Result<VerifiedToken, TokenError> {
        let id_claim = &self.settings.id_claim;
        let id = match lookup(&claims, id_claim) {
            None | Some(Value::Null) => return Err(TokenError::MissingClaim(id_claim.clone())),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(TokenError::Claim {
                    claim: id_claim.clone(),
                    message: "must be a non-empty string".into(),
                })
            }
        };
        let groups_claim = &self.settings.groups_claim;
        let bad_groups = || TokenError::Claim {
            claim: groups_claim.clone(),
            message: "must be a list of non-empty strings".into(),
        };
        let groups = match lookup(&claims, groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|g| match g {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(bad_groups()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad_groups()),
        };
        let expires = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0) as i64;
        let not_before = claims.get("nbf").and_then(Value::as_f64).map(|n| n as i64);
        // `principal.id` and `principal.groups` are reserved: the claims they came from are not repeated.
        if !id_claim.contains('.') {
            claims.remove(id_claim.as_str());
        }
        claims.remove("id");
        claims.remove("groups");
        let weight = token_len
            + id.len()
            + groups.iter().map(String::len).sum::<usize>()
            + serde_json::to_string(&claims).map(|s| s.len()).unwrap_or(0)
            + 128;
        Ok(VerifiedToken {
            id,
            groups,
            attributes: claims,
            expires,
            not_before,
            weight,
        })
    }
}

/// A cached or new token, checked against the clock (the cache keeps a token at most until it expires).
fn fresh(
    token: Arc<VerifiedToken>,
    now: i64,
    leeway: i64,
) -> Result<Arc<VerifiedToken>, TokenError> {
    if now > token.expires.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if token
        .not_before
        .is_some_and(|nbf| now < nbf.saturating_sub(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    Ok(token)
}

/// A dotted path into the claims.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The cause for a header that did not decode: an algorithm named but refused (`none`, `HS256`, ...) is told
/// apart from a token that is not a JWS at all.
fn header_error(token: &str, e: &jsonwebtoken::errors::Error) -> TokenError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string));
    match alg {
        Some(alg) => TokenError::Algorithm(alg),
        None => TokenError::Malformed(e.to_string()),
    }
}

/// The error when the signature held but the claims did not; `None` for signature and key errors.
fn claims_error(e: &jsonwebtoken::errors::Error) -> Option<TokenError> {
    use jsonwebtoken::errors::ErrorKind as K;
    Some(match e.kind() {
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::Issuer,
        K::InvalidAudience => TokenError::Audience,
        K::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
        K::InvalidClaimFormat(c) => TokenError::Claim {
            claim: c.clone(),
            message: "has the wrong type".into(),
        },
        K::Json(e) => TokenError::Malformed(format!("claims: {e}")),
        K::Base64(e) => TokenError::Malformed(e.to_string()),
        K::Utf8(e) => TokenError::Malformed(e.to_string()),
        K::InvalidToken => TokenError::Malformed("not three base64url parts".into()),
        _ => return None,
    })
}

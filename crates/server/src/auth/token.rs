//! Issuing and verifying tokens: JWTs signed with HS256 and the server's secret, nothing
//! else. A token naming any other algorithm (`none`, HS512, RS256, ...) is refused before
//! its signature is looked at; an expired one is refused (after `leeway` for clock skew);
//! one whose user id, templates or teams are not valid ids is refused too.
//!
//! Errors never contain the token, nor anything decoded from it beyond a claim's name.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::claims::{Claims, now_secs};

/// Fewest bytes a secret may have (HS256's key should be at least as long as its hash).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest token looked at; anything longer is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The server's signing secret. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct AuthSecret(Vec<u8>);

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the auth secret must be at least {MIN_SECRET_BYTES} bytes; it is {0} (make one with: openssl rand -hex 32)"
    )]
    TooShort(usize),
}

impl AuthSecret {
    /// A secret from its text; surrounding whitespace (a file's final newline) is dropped.
    pub fn new(text: &str) -> Result<Self, SecretError> {
        let t = text.trim();
        if t.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(t.len()));
        }
        Ok(AuthSecret(t.as_bytes().to_vec()))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthSecret(<{} bytes, redacted>)", self.0.len())
    }
}

/// Why a token was refused (or could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature does not match this server's secret")]
    BadSignature,
    #[error(
        "the token is signed with an algorithm other than HS256, which is the only one accepted"
    )]
    Algorithm,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("signing the token failed: {0}")]
    Sign(String),
    #[error("no auth secret is configured ([auth] secret or TIERCACHE_AUTH_SECRET)")]
    NoSecret,
}

fn from_jwt(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(c) => TokenError::Claims(format!("{c} is missing")),
        ErrorKind::InvalidClaimFormat(c) => TokenError::Claims(format!("{c} is malformed")),
        ErrorKind::ImmatureSignature => TokenError::Claims("it is not valid yet".into()),
        ErrorKind::InvalidAudience => TokenError::Claims("it is meant for another audience".into()),
        ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
            TokenError::Claims("unexpected issuer or subject".into())
        }
        // Claims that are not the expected JSON: name nothing of what they held.
        ErrorKind::Json(_) => {
            TokenError::Claims("they are not the expected JSON (sub, exp, role, ...)".into())
        }
        _ => TokenError::Malformed,
    }
}

/// Refuses a token whose header is not JSON naming HS256.
fn check_header(token: &str) -> Result<(), TokenError> {
    use base64::Engine;
    let segment = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if !header.is_object() {
        return Err(TokenError::Malformed);
    }
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Algorithm);
    }
    let parsed = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if parsed.alg != Algorithm::HS256 {
        return Err(TokenError::Algorithm);
    }
    Ok(())
}

/// The keys of one secret, and how tokens are checked.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("leeway_secs", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys of `secret`; `exp` is checked with `leeway` for clocks that disagree.
    pub fn new(secret: &AuthSecret, leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.bytes()),
            decoding: DecodingKey::from_secret(secret.bytes()),
            validation,
        }
    }

    /// Signs `claims` (checked first: valid ids, an expiry in the future).
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        claims.validate().map_err(TokenError::Claims)?;
        if claims.exp <= now_secs() {
            return Err(TokenError::Claims("exp is not in the future".into()));
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// The claims of `token`, if it is a valid, unexpired HS256 JWT signed with this secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        // The header first: anything but `"alg": "HS256"` (`none` included) is refused
        // before any key is tried.
        check_header(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(from_jwt)?;
        data.claims.validate().map_err(TokenError::Claims)?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiercache_core::Role;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::new(&AuthSecret::new(SECRET).unwrap(), Duration::ZERO)
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn claims() -> Claims {
        let mut c = Claims::new("alice", Role::User, Duration::from_secs(3600));
        c.templates = vec!["react-vite".into()];
        c
    }

    #[test]
    fn issue_then_verify_round_trips() {
        let k = keys();
        let mut c = claims();
        c.ro = true;
        c.teams = vec!["web".into()];
        let t = k.issue(&c).unwrap();
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(k.verify(&t).unwrap(), c);
    }

    #[test]
    fn expired_tokens_are_refused_and_leeway_is_honoured() {
        let k = keys();
        let mut c = claims();
        assert!(
            k.issue(&{
                let mut e = c.clone();
                e.exp = now_secs() - 10;
                e
            })
            .is_err()
        );
        // Sign an expired token by hand (issue refuses to).
        c.exp = now_secs() - 120;
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &k.encoding).unwrap();
        assert_eq!(k.verify(&t).unwrap_err(), TokenError::Expired);
        let lenient = TokenKeys::new(&AuthSecret::new(SECRET).unwrap(), Duration::from_secs(600));
        assert!(lenient.verify(&t).is_ok());
    }

    #[test]
    fn another_secret_is_a_forgery() {
        let other = TokenKeys::new(
            &AuthSecret::new("another secret that is long enough!!").unwrap(),
            Duration::ZERO,
        );
        let t = other.issue(&claims()).unwrap();
        assert_eq!(keys().verify(&t).unwrap_err(), TokenError::BadSignature);
        // A tampered payload with the original signature too.
        let good = keys().issue(&claims()).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let mut admin = claims();
        admin.role = Role::Admin;
        let payload = b64(&serde_json::to_vec(&admin).unwrap());
        let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(
            keys().verify(&forged).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let payload = b64(&serde_json::to_vec(&claims()).unwrap());
        for alg in ["none", "HS512", "RS256", "ES256", "EdDSA", "hs256", ""] {
            let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            for sig in ["", "c2ln"] {
                let t = format!("{header}.{payload}.{sig}");
                assert_eq!(
                    keys().verify(&t).unwrap_err(),
                    TokenError::Algorithm,
                    "{alg}"
                );
            }
        }
        // HS512 really signed with the same secret is still refused.
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(keys().verify(&t).unwrap_err(), TokenError::Algorithm);
        let no_alg = b64(br#"{"typ":"JWT"}"#);
        assert!(keys().verify(&format!("{no_alg}.{payload}.x")).is_err());
    }

    #[test]
    fn bad_claims_and_shapes_are_refused() {
        let k = keys();
        let mut c = claims();
        c.sub = "../bob".into();
        assert!(matches!(k.issue(&c), Err(TokenError::Claims(_))));
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &k.encoding).unwrap();
        assert!(matches!(k.verify(&t), Err(TokenError::Claims(_))));
        let mut c = claims();
        c.templates = vec!["a/b".into()];
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &k.encoding).unwrap();
        assert!(matches!(k.verify(&t), Err(TokenError::Claims(_))));
        // No sub, no exp.
        for body in [r#"{"exp":99999999999}"#, r#"{"sub":"alice"}"#] {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &v, &k.encoding).unwrap();
            assert!(matches!(k.verify(&t), Err(TokenError::Claims(_))), "{body}");
        }
        for junk in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "....",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            let e = k.verify(junk).unwrap_err();
            assert!(
                matches!(e, TokenError::Malformed | TokenError::TooLong),
                "{junk:.10}: {e:?}"
            );
        }
    }

    #[test]
    fn secrets_are_long_and_never_printed() {
        assert_eq!(
            AuthSecret::new("short").unwrap_err(),
            SecretError::TooShort(5)
        );
        let s = AuthSecret::new(&format!("  {SECRET}\n")).unwrap();
        assert_eq!(s.bytes(), SECRET.as_bytes());
        let shown = format!("{s:?} {:?}", keys());
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

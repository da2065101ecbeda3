//! Tarball integrity: bytes are checked against the packument's `dist.integrity` (SRI,
//! sha512) or, for old packages, `dist.shasum` (hex SHA-1) as they stream; a mismatch ends
//! the stream in an error, so the store keeps nothing.

use std::io;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use ssri::{Algorithm, Integrity, IntegrityChecker};

use super::packument::TarballRef;

/// The tarball's bytes do not match what its packument says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tarball {url} failed its integrity check: expected {expected}")]
pub struct IntegrityMismatch {
    pub url: String,
    pub expected: String,
}

/// The integrity a tarball must have, if its packument says.
pub fn expected(tarball: &TarballRef) -> Option<Integrity> {
    if let Some(i) = tarball.integrity.as_deref().and_then(|s| s.parse().ok()) {
        return Some(i);
    }
    tarball
        .shasum
        .as_deref()
        .and_then(|hex| Integrity::from_hex(hex, Algorithm::Sha1).ok())
}

/// Wraps `body` so that it ends in an [`IntegrityMismatch`] error (inside an `io::Error`)
/// when its bytes do not match `sri`. Each chunk is passed on only when the next one has
/// arrived, so on a mismatch the error takes the place of the last chunk: a reader never
/// receives every byte of a bad tarball.
pub fn verify<S>(
    body: S,
    sri: Integrity,
    url: String,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
{
    let expected = sri.to_string();
    let state = Verifying {
        body,
        checker: Some(IntegrityChecker::new(sri)),
        pending: None,
    };
    futures::stream::unfold(state, move |mut st| {
        let (url, expected) = (url.clone(), expected.clone());
        async move {
            loop {
                let checker = st.checker.as_mut()?;
                match st.body.next().await {
                    Some(Ok(chunk)) => {
                        checker.input(&chunk);
                        if let Some(previous) = st.pending.replace(chunk) {
                            return Some((Ok(previous), st));
                        }
                    }
                    Some(Err(e)) => {
                        st.checker = None;
                        return Some((Err(e), st));
                    }
                    None => {
                        let verdict = st.checker.take()?.result();
                        return match (verdict, st.pending.take()) {
                            (Ok(_), Some(last)) => Some((Ok(last), st)),
                            (Ok(_), None) => None,
                            (Err(_), _) => {
                                let e = IntegrityMismatch { url, expected };
                                Some((Err(io::Error::new(io::ErrorKind::InvalidData, e)), st))
                            }
                        };
                    }
                }
            }
        }
    })
}

struct Verifying<S> {
    body: S,
    checker: Option<IntegrityChecker>,
    pending: Option<Bytes>,
}

/// The mismatch behind an error, if that is what it is.
pub fn mismatch_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a IntegrityMismatch> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(m) = err.downcast_ref::<IntegrityMismatch>() {
            return Some(m);
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && let Some(m) = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<IntegrityMismatch>())
        {
            return Some(m);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(data: &'static [u8], sri: Integrity) -> io::Result<Vec<u8>> {
        let body = futures::stream::iter(vec![
            Ok(Bytes::from_static(&data[..3])),
            Ok(Bytes::from_static(&data[3..])),
        ]);
        let mut s = Box::pin(verify(body, sri, "u".into()));
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn good_bytes_pass_bad_bytes_fail() {
        let sri = Integrity::from(b"hello world");
        assert_eq!(
            run(b"hello world", sri.clone()).await.unwrap(),
            b"hello world"
        );
        let err = run(b"hello WORLD", sri).await.unwrap_err();
        assert!(mismatch_in(&err).is_some());
    }

    #[test]
    fn shasum_is_the_fallback() {
        let t = TarballRef {
            url: "u".into(),
            integrity: None,
            shasum: Some("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed".into()),
        };
        let sri = expected(&t).unwrap();
        assert!(sri.check(b"hello world").is_ok());
        let none = TarballRef {
            url: "u".into(),
            integrity: None,
            shasum: None,
        };
        assert!(expected(&none).is_none());
    }
}

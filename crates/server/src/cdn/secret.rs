//! Provider credentials (API tokens, webhook secrets): kept out of `Debug`, logs and
//! answers, and sent only as sensitive header values.

use reqwest::header::HeaderValue;

/// A credential; `Debug` prints `<redacted>`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `value` trimmed, if it is non-empty and a header can carry it.
    pub fn new(value: &str) -> Option<Secret> {
        let v = value.trim();
        (!v.is_empty() && HeaderValue::from_str(v).is_ok()).then(|| Secret(v.to_owned()))
    }

    /// The value itself, for the one place that sends or signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `prefix` + the value as a header value marked sensitive (hidden from `Debug`).
    pub fn header(&self, prefix: &str) -> HeaderValue {
        let mut v = HeaderValue::from_str(&format!("{prefix}{}", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        v.set_sensitive(true);
        v
    }

    /// `text` with every occurrence of the value replaced, for errors that echo a request.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Secret::new(&s).ok_or_else(|| {
            serde::de::Error::custom("a secret must be non-empty and fit in an HTTP header")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = Secret::new(" tok-123 ").unwrap();
        assert_eq!(s.expose(), "tok-123");
        assert_eq!(format!("{s:?}"), "<redacted>");
        let h = s.header("Bearer ");
        assert!(!format!("{h:?}").contains("tok-123"));
        assert_eq!(s.redact("x tok-123 y"), "x <redacted> y");
        assert!(Secret::new("  ").is_none() && Secret::new("a\nb").is_none());
    }
}

//! Site names: what `tiercache deploy --site` and `/assets/{site}/` name; they become part
//! of store keys, so they follow the id rules of template and user ids.

use std::fmt;

use crate::key::{KeyError, check_id};

/// A validated site name: 1–64 of `A-Z a-z 0-9 . _ -`, no `..`, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteName(String);

impl SiteName {
    /// The site name `s`, if valid.
    pub fn new(s: &str) -> Result<Self, KeyError> {
        check_id("site name", s)?;
        Ok(SiteName(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names_follow_the_id_rules() {
        for ok in ["docs", "my-site.v2", "A_b"] {
            assert!(SiteName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "a/b", "a..b", "a b", "a%2f", "ä", &"s".repeat(65)] {
            assert!(SiteName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}

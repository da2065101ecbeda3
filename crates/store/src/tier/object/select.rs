//! Finding the entries an invalidation selects in the bucket: a listing of the entry
//! documents under the scopes it can touch, filtered by key (and, for tags or an epoch GC,
//! by each candidate's metadata). For operators and events, never a request's path.

use tiercache_core::{CacheKey, EntryMeta, Scope, Selector};

use super::ObjectTier;
use super::error::L3Error;

/// A predicate sparing some selected entries (an epoch GC spares current ones).
pub type SpareRef<'a> = &'a (dyn Fn(&CacheKey, &EntryMeta) -> bool + Send + Sync);

/// The top-level folder of a scope's entry documents.
fn scope_type(scope: &Scope) -> &'static str {
    match scope {
        Scope::Global => "global",
        Scope::Template(_) => "template",
        Scope::User(_) => "user",
    }
}

impl ObjectTier {
    /// The entries `selector` selects (expired ones too) that `spare` does not keep; with
    /// `spare`, or for a tag, each candidate's metadata is read.
    pub async fn select(
        &self,
        selector: &Selector,
        spare: Option<SpareRef<'_>>,
    ) -> Result<Vec<CacheKey>, L3Error> {
        let candidates = match selector {
            Selector::Key(k) => vec![k.clone()],
            _ => {
                let roots: Vec<&str> = match selector {
                    Selector::Scope(s) => vec![scope_type(s)],
                    Selector::Prefix(p) => ["global", "template", "user"]
                        .into_iter()
                        .filter(|r| p.starts_with(r) || r.starts_with(p.as_str()))
                        .collect(),
                    _ => vec!["global", "template", "user"],
                };
                let mut keys = Vec::new();
                for root in roots {
                    keys.extend(
                        self.list_keys(root)
                            .await?
                            .into_iter()
                            .filter(|k| selector.may_match(k)),
                    );
                }
                keys
            }
        };
        let must_read =
            spare.is_some() || selector.needs_meta() || matches!(selector, Selector::Key(_));
        if !must_read {
            return Ok(candidates);
        }
        let mut out = Vec::new();
        for key in candidates {
            let Some(meta) = self.head(&key).await? else {
                continue;
            };
            if selector.matches(&key, &meta) && !spare.is_some_and(|f| f(&key, &meta)) {
                out.push(key);
            }
        }
        Ok(out)
    }
}

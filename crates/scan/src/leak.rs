//! Leakage rules, opt-in ([`crate::Scanner::with_leakage`]): personal data that must not sit
//! in a shared scope — email addresses, and references to this server's own user ids.
//!
//! Precise rather than broad (the seed's `scanForLeakage` flagged any email and any
//! `user_id=<hex>`, which would flag every npm package):
//!
//! - **emails** ([`EMAIL`]): not in third-party code (`node_modules/`, `vendor/`, …), package
//!   manifests (`package.json`'s author fields), authorship files (`LICENSE`, `AUTHORS`,
//!   `CHANGELOG`, …), source maps, minified code, test fixtures, or on copyright/`@author`
//!   lines; not role or no-reply mailboxes (`support@`, `noreply@`), documentation domains
//!   (`example.com`, `.test`), placeholders (`you@`, `john.doe@`), SSH/scp remotes
//!   (`git@github.com:org/repo`), URL userinfo, or retina file names (`logo@2x.png`);
//! - **user ids** ([`USER_ID`]): only ids this server knows (4+ characters, not a system
//!   account such as `node` or `runner`), as whole identifiers, either in an identifying
//!   context (`user/<id>`, `/home/<id>/`, `/Users/<id>`, `user_id=<id>`, `"userId": "<id>"`,
//!   `USER=<id>`) or anywhere when the id is distinctive (8+ characters mixing letters and
//!   digits, e.g. `u-7f3a9c21`);
//! - **UUID user ids** ([`UUID_USER_ID`]): the seed's `user[_-]?id = <value>` pattern, for
//!   UUID-shaped values of users this server may not know, except documented example UUIDs.
//!
//! A finding's `redacted` shows only the length: no part of an address or id is repeated.

use crate::lines::Lines;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use crate::allow;
use crate::finding::Finding;
use crate::paths;

/// Rule id of an email address.
pub const EMAIL: &str = "email-address";
/// Rule id of a reference to a known user id.
pub const USER_ID: &str = "user-id-reference";
/// Rule id of a `user_id = <uuid>` assignment.
pub const UUID_USER_ID: &str = "user-id-assignment";

/// Shortest user id looked for: shorter ones are ordinary words and numbers.
pub const MIN_ID_LEN: usize = 4;

/// Findings kept per file and rule: a file with more is flagged already.
const MAX_PER_RULE: usize = 50;

/// How far before an id its identifying context is looked for.
const CONTEXT: usize = 48;

/// Account names every machine has: an id equal to one of these would match
/// `/home/<id>/` in any build output, so it is not looked for.
const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "node",
    "runner",
    "ubuntu",
    "debian",
    "admin",
    "user",
    "users",
    "guest",
    "nobody",
    "daemon",
    "vscode",
    "codespace",
    "gitpod",
    "coder",
    "docker",
    "build",
    "builder",
    "jenkins",
    "circleci",
    "travis",
    "postgres",
    "mysql",
    "redis",
    "nginx",
    "www-data",
    "test",
    "anonymous",
    "system",
];

/// Role and robot mailboxes: not a person.
const ROLE_LOCALS: &[&str] = &[
    "git",
    "support",
    "security",
    "info",
    "contact",
    "admin",
    "hello",
    "team",
    "help",
    "abuse",
    "postmaster",
    "webmaster",
    "hostmaster",
    "sales",
    "privacy",
    "legal",
    "bugs",
    "opensource",
    "oss",
    "dev",
    "devnull",
    "null",
    "nobody",
    "root",
    "mailer-daemon",
    "notifications",
    "feedback",
    "press",
    "jobs",
    "careers",
    "billing",
    "office",
    "maintainers",
    "community",
];

/// Documentation placeholders for a person.
const PLACEHOLDER_LOCALS: &[&str] = &[
    "user",
    "username",
    "you",
    "your.name",
    "yourname",
    "your-name",
    "your_name",
    "youremail",
    "your.email",
    "your-email",
    "your_email",
    "name",
    "someone",
    "somebody",
    "email",
    "mail",
    "foo",
    "bar",
    "baz",
    "test",
    "me",
    "john.doe",
    "jane.doe",
    "johndoe",
    "janedoe",
    "john.smith",
    "jdoe",
];

/// Domains used for documentation, and protocol namespaces (`aes128-gcm@openssh.com`).
const DOC_DOMAINS: &[&str] = &[
    "openssh.com",
    "libssh.org",
    "domain.com",
    "yourdomain.com",
    "your-domain.com",
    "mydomain.com",
    "company.com",
    "yourcompany.com",
    "acme.com",
    "contoso.com",
    "fabrikam.com",
    "email.com",
    "mail.com",
    "host.com",
    "server.com",
    "site.com",
];

/// Top-level "domains" that are file extensions: `logo@2x.png`, `pkg@1.0.0.tgz`.
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "js", "mjs", "cjs", "ts",
    "mts", "cts", "tsx", "jsx", "css", "scss", "sass", "less", "json", "map", "html", "htm", "md",
    "txt", "xml", "yml", "yaml", "lock", "wasm", "node", "woff", "woff2", "ttf", "otf", "eot",
    "tgz", "gz", "zip", "tar", "vue", "svelte", "py", "rb", "go", "rs", "java", "kt", "swift",
    "php", "sh", "exe", "dll", "so", "dylib", "pdf", "mp3", "mp4", "webm",
];

/// Directories of third-party code: published packages carry their authors' addresses.
const VENDORED_DIRS: &[&str] = &[
    "node_modules",
    "bower_components",
    "jspm_packages",
    "vendor",
    "site-packages",
    "dist-packages",
    ".pnpm",
    ".yarn",
    ".cargo",
    "registry",
];

/// File names (lowercase prefixes) whose addresses are authorship notices.
const AUTHORSHIP_FILES: &[&str] = &[
    "authors",
    "contributors",
    "maintainers",
    "credits",
    "license",
    "licence",
    "copying",
    "notice",
    "changelog",
    "changes",
    "history",
    "news",
    "codeowners",
    ".mailmap",
    "security",
    "code_of_conduct",
    "code-of-conduct",
    "funding",
];

/// Package manifests: their `author`/`maintainers`/`bugs` fields name the package's authors.
const MANIFESTS: &[&str] = &[
    "package.json",
    "bower.json",
    "composer.json",
    "cargo.toml",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "pkg-info",
    "metadata",
    "pom.xml",
    "podspec.json",
];

/// Words (lowercase) that mark a line as an authorship notice.
const AUTHORSHIP_WORDS: &[&str] = &[
    "copyright",
    "@author",
    "@license",
    "@maintainer",
    "(c)",
    "©",
    "author:",
    "authors:",
    "maintainer:",
    "signed-off-by",
    "co-authored-by",
    "reported-by",
    "reviewed-by",
];

/// UUIDs from specifications and documentation (RFC 9562, Wikipedia, common samples).
const EXAMPLE_UUIDS: &[&str] = &[
    "123e4567-e89b-12d3-a456-426614174000",
    "123e4567-e89b-12d3-a456-426655440000",
    "550e8400-e29b-41d4-a716-446655440000",
    "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "6ba7b811-9dad-11d1-80b4-00c04fd430c8",
    "6ba7b812-9dad-11d1-80b4-00c04fd430c8",
    "6ba7b814-9dad-11d1-80b4-00c04fd430c8",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
];

/// What the leakage rules look for; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakageRules {
    /// This server's user ids; those shorter than [`MIN_ID_LEN`] and system account names
    /// are left out.
    pub user_ids: Vec<String>,
    /// Whether email addresses are findings (off for public packages, whose manifests and
    /// docs name their authors).
    pub emails: bool,
    /// Whether `user_id = <uuid>` of any (not only a known) user is a finding.
    pub uuid_user_ids: bool,
}

impl LeakageRules {
    /// The ids actually looked for: long enough, not a system account, de-duplicated.
    pub fn effective_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .user_ids
            .iter()
            .filter(|id| {
                id.len() >= MIN_ID_LEN
                    && id.bytes().all(is_id_byte)
                    && !SYSTEM_ACCOUNTS.iter().any(|s| s.eq_ignore_ascii_case(id))
            })
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The rules compiled for one scanner.
#[derive(Debug)]
pub(crate) struct Compiled {
    email: Option<Regex>,
    uuid_assignment: Option<Regex>,
    ids: Option<(AhoCorasick, Vec<bool>)>,
    context: Regex,
}

fn compile(rule: &'static str, pattern: &str) -> Result<Regex, crate::ScanError> {
    Regex::new(pattern).map_err(|e| crate::ScanError::Rule {
        rule,
        reason: e.to_string(),
    })
}

impl Compiled {
    /// Compiles `rules`; fails only on a bug in the patterns here.
    pub fn new(rules: &LeakageRules) -> Result<Self, crate::ScanError> {
        let email = rules
            .emails
            .then(|| {
                compile(
                    EMAIL,
                    r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}",
                )
            })
            .transpose()?;
        let uuid_assignment = rules
            .uuid_user_ids
            .then(|| {
                compile(
                    UUID_USER_ID,
                    r#"(?i)\buser[_-]?id["']?\s*[:=]\s*["'`]?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"#,
                )
            })
            .transpose()?;
        // What, right before an id, says it names a user (matched at the end of the window).
        let context = compile(
            USER_ID,
            r#"(?:(?i:users?)/|/home/|\\(?i:users)\\|(?i:\b(?:user|owner|author|login|account|created_by|createdby|uid)[_-]?(?:id|name)?)["']?\s*[:=]\s*["'`]?|\b(?:USER|LOGNAME|USERNAME)=["']?)$"#,
        )?;
        let list = rules.effective_ids();
        let ids = if list.is_empty() {
            None
        } else {
            let distinctive = list.iter().map(|id| is_distinctive(id)).collect();
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&list)
                .map_err(|e| crate::ScanError::Rule {
                    rule: USER_ID,
                    reason: e.to_string(),
                })?;
            Some((ac, distinctive))
        };
        Ok(Self {
            email,
            uuid_assignment,
            ids,
            context,
        })
    }
}

/// Characters of a user id (as `tiercache-core` allows them).
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// An id unlikely to occur by chance: 8+ characters mixing letters and digits (or a UUID).
fn is_distinctive(id: &str) -> bool {
    id.len() >= 8
        && id.bytes().any(|b| b.is_ascii_digit())
        && id.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Scans one text file's bytes (binary files are skipped by the caller).
pub(crate) fn scan(c: &Compiled, path: &str, rel: &str, text: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    let lines = Lines::new(text);
    if let Some(re) = &c.email
        && memchr::memchr(b'@', text).is_some()
        && !emails_exempt(rel)
    {
        for m in re.find_iter(text) {
            if out.len() >= MAX_PER_RULE {
                break;
            }
            if is_personal_email(text, m.start(), m.end(), &lines) {
                out.push(finding(path, EMAIL, &lines, m.start(), m.len()));
            }
        }
    }
    if let Some((ac, distinctive)) = &c.ids {
        let mut n = 0;
        for m in ac.find_iter(text) {
            if n >= MAX_PER_RULE {
                break;
            }
            let (s, e) = (m.start(), m.end());
            if !id_bounded(text, s, e) {
                continue;
            }
            let window = &text[s.saturating_sub(CONTEXT)..s];
            let window = match memchr::memrchr(b'\n', window) {
                Some(nl) => &window[nl + 1..],
                None => window,
            };
            if distinctive[m.pattern().as_usize()] || c.context.is_match(window) {
                out.push(finding(path, USER_ID, &lines, s, e - s));
                n += 1;
            }
        }
    }
    if let Some(re) = &c.uuid_assignment
        && !allow::is_fixture_path(rel)
    {
        for caps in re.captures_iter(text).take(MAX_PER_RULE) {
            let Some(v) = caps.get(1) else { continue };
            let value = v.as_bytes().to_ascii_lowercase();
            let example = EXAMPLE_UUIDS
                .iter()
                .any(|u| u.as_bytes() == value.as_slice())
                || value
                    .iter()
                    .filter(|&&b| b != b'-')
                    .collect::<std::collections::HashSet<_>>()
                    .len()
                    <= 2;
            // A known id's assignment is reported by the id rule already.
            let reported = out
                .iter()
                .any(|f: &Finding| f.rule == USER_ID && f.line == lines.position(v.start()).0);
            if !example && !reported {
                out.push(finding(path, UUID_USER_ID, &lines, v.start(), v.len()));
            }
        }
    }
    out.sort_by_key(|f| (f.line, f.column));
    out
}

fn finding(path: &str, rule: &'static str, lines: &Lines, start: usize, len: usize) -> Finding {
    let (line, column) = lines.position(start);
    Finding {
        path: path.to_string(),
        rule,
        line,
        column: Some(column),
        redacted: format!("…({len} chars)"),
    }
}

/// Whether an id match stands alone: no id character glued before it, and none after it
/// (a trailing `.` ends a sentence unless more id characters follow).
fn id_bounded(text: &[u8], s: usize, e: usize) -> bool {
    let left = s == 0 || !is_id_byte(text[s - 1]);
    let right = match text.get(e) {
        None => true,
        Some(b'.') => !text.get(e + 1).is_some_and(|b| b.is_ascii_alphanumeric()),
        Some(&b) => !is_id_byte(b),
    };
    left && right
}

/// Files whose addresses are not personal data leaking: third-party code, manifests,
/// authorship files, source maps, minified code and test fixtures.
fn emails_exempt(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split(['/', '\\', '!']).collect();
    let vendored = parts[..parts.len().saturating_sub(1)]
        .iter()
        .any(|p| VENDORED_DIRS.iter().any(|d| p.eq_ignore_ascii_case(d)));
    let name = paths::basename(rel).to_ascii_lowercase();
    let authorship = AUTHORSHIP_FILES.iter().any(|f| name.starts_with(f))
        || name.contains("license")
        || name.contains("licence")
        || MANIFESTS.contains(&name.as_str())
        || name.ends_with(".gemspec")
        || name.ends_with(".nuspec")
        || name.ends_with(".podspec");
    vendored
        || authorship
        || name.ends_with(".map")
        || allow::is_minified_name(&name)
        || allow::is_fixture_path(rel)
}

/// Whether the address at `s..e` is a person's: see the module documentation.
fn is_personal_email(text: &[u8], s: usize, e: usize, lines: &Lines) -> bool {
    // Glued to more address characters on the left: part of something else.
    if s > 0 && matches!(text[s - 1], b'.' | b'%' | b'+' | b'-' | b'_' | b'@') {
        return false;
    }
    // URL userinfo (`scheme://user@host`): a login, judged by the URL-password rule.
    if text[..s].ends_with(b"//") || text[..s].ends_with(b":") {
        return false;
    }
    let scp_remote =
        text.get(e) == Some(&b':') && text.get(e + 1).is_some_and(|b| !b.is_ascii_whitespace());
    let glued = text
        .get(e)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    // `git@github.com:org/repo.git`, `user@host:path`: an scp-style remote.
    if scp_remote || glued {
        return false;
    }
    if lines.line_len(s) > allow::MINIFIED_LINE {
        return false;
    }
    let addr = String::from_utf8_lossy(&text[s..e]).to_ascii_lowercase();
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let tld = domain.rsplit('.').next().unwrap_or("");
    let labels: Vec<&str> = domain.split('.').collect();
    let role = ROLE_LOCALS.contains(&local)
        || [
            "noreply",
            "no-reply",
            "no_reply",
            "donotreply",
            "do-not-reply",
            "bounce",
        ]
        .iter()
        .any(|p| local.starts_with(p));
    let doc_domain = labels
        .iter()
        .any(|l| matches!(*l, "example" | "noreply" | "no-reply" | "localhost"))
        || matches!(tld, "test" | "invalid" | "local" | "localhost" | "example")
        || DOC_DOMAINS.contains(&domain);
    let placeholder = PLACEHOLDER_LOCALS.contains(&local) || allow::is_placeholder(addr.as_bytes());
    let file_name = FILE_EXTENSIONS.contains(&tld);
    let version = local.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && labels
            .first()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if role || doc_domain || placeholder || file_name || version {
        return false;
    }
    let line = lines.line(text, s).to_ascii_lowercase();
    let line = String::from_utf8_lossy(&line);
    !AUTHORSHIP_WORDS.iter().any(|w| line.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(ids: &[&str]) -> Compiled {
        Compiled::new(&LeakageRules {
            user_ids: ids.iter().map(|s| s.to_string()).collect(),
            emails: true,
            uuid_user_ids: true,
        })
        .unwrap()
    }

    fn rules_of(c: &Compiled, path: &str, text: &str) -> Vec<&'static str> {
        scan(c, path, path, text.as_bytes())
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn personal_emails_are_found_and_non_personal_forms_are_not() {
        let c = rules(&[]);
        for hit in [
            "deploying as alice.smith@corp-mail.io\n",
            "git config user.email 'j.random@gmail.com'\n",
            "{\"email\": \"mara.k@firma.de\"}\n",
            "committer Kim <kim.lee@lumen-data.co.uk> 1700000000 +0000\n",
        ] {
            assert_eq!(rules_of(&c, "dist/build.log", hit), [EMAIL], "{hit}");
        }
        for miss in [
            "git@github.com:acme/web.git\n",
            "ssh://git@gitlab.com/acme/web\n",
            "https://deploy:x@registry.corp.io/\n",
            "contact support@corp.io or noreply@corp.io\n",
            "see you@example.com, a@b.test, john.doe@gmail.com\n",
            "<img src=\"logo@2x.png\">\n",
            "// Copyright 2020 Kim Lee <kim.lee@lumen-data.co.uk>\n",
            " * @author Kim <kim.lee@lumen-data.co.uk>\n",
            "12345+someone@users.noreply.github.com\n",
            "npm i react@18.2.0 lodash@latest\n",
        ] {
            assert!(rules_of(&c, "dist/build.log", miss).is_empty(), "{miss}");
        }
        let email = "{\"author\": \"Kim Lee <kim.lee@lumen-data.co.uk>\"}\n";
        for exempt in [
            "package.json",
            "app.tgz!package/node_modules/x/index.js",
            "AUTHORS",
            "LICENSE.md",
            "dist/main.js.map",
            "test/fixtures/users.json",
        ] {
            assert!(rules_of(&c, exempt, email).is_empty(), "{exempt}");
        }
        let off = Compiled::new(&LeakageRules::default()).unwrap();
        assert!(rules_of(&off, "x.log", "alice.smith@corp-mail.io").is_empty());
    }

    #[test]
    fn known_ids_are_found_in_identifying_contexts_or_when_distinctive() {
        let c = rules(&["alice", "u-7f3a9c21", "node", "bob"]);
        for hit in [
            "cache key user/alice/object/x\n",
            "HOME=/home/alice/project\n",
            "/Users/alice/src/app\n",
            "C:\\Users\\alice\\app\n",
            "user_id=alice\n",
            "{\"userId\": \"alice\"}\n",
            "USER=alice\n",
            "owner: u-7f3a9c21\n",
            "built for u-7f3a9c21.\n",
        ] {
            assert_eq!(rules_of(&c, "dist/out.txt", hit), [USER_ID], "{hit}");
        }
        for miss in [
            "alice in wonderland\n",
            "/home/alice-bot/\n",
            "/home/malice/\n",
            "/home/node/app\n",
            "user/bob/x\n",
            "xu-7f3a9c21\n",
            "u-7f3a9c21x\n",
        ] {
            assert!(rules_of(&c, "dist/out.txt", miss).is_empty(), "{miss}");
        }
    }

    #[test]
    fn uuid_user_ids_are_found_unless_examples_or_fixtures() {
        let c = rules(&[]);
        let real = "const userId = \"9b2d4c1e-7a3f-4e8b-b1c2-3d4e5f6a7b8c\";\n";
        assert_eq!(rules_of(&c, "dist/app.js", real), [UUID_USER_ID]);
        assert!(rules_of(&c, "test/app.test.js", real).is_empty());
        let example = "user_id: 123e4567-e89b-12d3-a456-426614174000\n";
        assert!(rules_of(&c, "dist/app.js", example).is_empty());
        let zeros = "user_id: 00000000-0000-0000-0000-000000000001\n";
        assert!(rules_of(&c, "dist/app.js", zeros).is_empty());
    }

    #[test]
    fn ids_too_short_or_system_accounts_are_left_out() {
        let r = LeakageRules {
            user_ids: vec!["bob".into(), "root".into(), "Node".into(), "carol".into()],
            ..Default::default()
        };
        assert_eq!(r.effective_ids(), ["carol"]);
    }

    #[test]
    fn findings_never_show_the_address() {
        let c = rules(&["u-7f3a9c21"]);
        let text = "to alice.smith@corp-mail.io for u-7f3a9c21\n";
        for f in scan(&c, "x.log", "x.log", text.as_bytes()) {
            assert!(!f.redacted.contains("alice") && !f.redacted.contains("u-7f"));
            assert!(!f.reason().contains("alice") && !f.reason().contains("u-7f"));
        }
    }
}

//! Scanning one file's bytes: the path rules, then one keyword pass that picks the content
//! rules worth running, then each picked rule's regex over the whole text, its checks, the
//! allowlists, and de-duplication (a specific rule wins over a generic one on the same bytes).

use crate::lines::Lines;
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use regex::bytes::{Captures, Regex};

use crate::allow;
use crate::entropy;
use crate::finding::{Finding, redact};
use crate::paths;
use crate::rules::{Check, Files, RULES, Rule, is_secret_name};
use crate::shapes;

/// A NUL byte in this many leading bytes marks a file as binary.
const BINARY_SNIFF: usize = 8192;

/// Longest variable name looked at before a secret-named assignment's keyword.
const MAX_NAME: usize = 128;

/// Candidates kept per file: a file with more is flagged many times over already, and the
/// cap bounds de-duplication (quadratic in the candidates) on hostile input.
const MAX_CANDIDATES: usize = 2000;

/// The rule table compiled once: a regex per rule and one keyword automaton for all rules.
#[derive(Debug)]
pub struct Compiled {
    regexes: Vec<Regex>,
    keywords: AhoCorasick,
    /// For each keyword (automaton pattern id), the rules it enables.
    keyword_rules: Vec<Vec<usize>>,
    /// For each keyword, the shorter keywords it starts with.
    keyword_prefixes: Vec<Vec<usize>>,
}

impl Compiled {
    /// Compiles [`RULES`]; fails only if a pattern in the table is invalid (a bug the unit
    /// tests catch).
    pub fn new() -> Result<Self, crate::ScanError> {
        let mut regexes = Vec::with_capacity(RULES.len());
        let mut words: Vec<&str> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        for (i, rule) in RULES.iter().enumerate() {
            let re = Regex::new(rule.pattern).map_err(|e| crate::ScanError::Rule {
                rule: rule.id,
                reason: e.to_string(),
            })?;
            regexes.push(re);
            for k in rule.keywords {
                match words.iter().position(|w| w == k) {
                    Some(at) => keyword_rules[at].push(i),
                    None => {
                        words.push(k);
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&words)
            .map_err(|e| crate::ScanError::Rule {
                rule: "keywords",
                reason: e.to_string(),
            })?;
        // For each keyword, the other keywords that are its (case-insensitive) prefixes.
        let keyword_prefixes = words
            .iter()
            .map(|w| {
                (0..words.len())
                    .filter(|&j| {
                        words[j].len() < w.len()
                            && w.as_bytes()[..words[j].len()]
                                .eq_ignore_ascii_case(words[j].as_bytes())
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            regexes,
            keywords,
            keyword_rules,
            keyword_prefixes,
        })
    }

    /// Which rules have a keyword somewhere in `text`. A leftmost-longest search, restarted
    /// one byte after each match's start, sees every position where a keyword starts; the
    /// shorter keywords starting at the same position are the match's prefixes, added from a
    /// table. Exact, and several times faster than an overlapping search.
    fn active_rules(&self, text: &[u8]) -> Vec<bool> {
        let mut active = vec![false; RULES.len()];
        let mut seen = vec![false; self.keyword_rules.len()];
        let mut remaining = seen.len();
        let mut at = 0;
        while at < text.len() {
            let Some(m) = self.keywords.find(Input::new(text).range(at..)) else {
                break;
            };
            let k = m.pattern().as_usize();
            for &p in std::iter::once(&k).chain(&self.keyword_prefixes[k]) {
                if !seen[p] {
                    seen[p] = true;
                    remaining -= 1;
                    for &r in &self.keyword_rules[p] {
                        active[r] = true;
                    }
                }
            }
            if remaining == 0 {
                break;
            }
            at = m.start() + 1;
        }
        active
    }
}

/// What the path says about a file, for the rules' scoping.
struct FileCtx {
    env: bool,
    npmrc: bool,
    config: bool,
    fixture: bool,
    lockfile: bool,
    minified: bool,
}

impl FileCtx {
    fn new(path: &str) -> Self {
        let name = paths::basename(path);
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
        let config = matches!(
            ext,
            "yaml"
                | "yml"
                | "toml"
                | "ini"
                | "cfg"
                | "conf"
                | "properties"
                | "sh"
                | "bash"
                | "zsh"
                | "tfvars"
                | "env"
        ) || lower.starts_with(".env")
            || lower.ends_with("rc");
        Self {
            env: paths::is_dotenv(name),
            npmrc: paths::is_npmrc(name),
            config,
            fixture: allow::is_fixture_path(path),
            lockfile: allow::is_lockfile(name),
            minified: allow::is_minified_name(name),
        }
    }

    fn applies(&self, rule: &Rule) -> bool {
        let files = match rule.files {
            Files::Any => true,
            Files::Env => self.env,
            Files::Npmrc => self.npmrc,
        };
        files
            && !(self.fixture && rule.fixture_exempt)
            && !(self.lockfile && rule.priority >= 2)
            && !(self.minified && rule.priority >= 1)
    }
}

/// A match that passed its rule's checks, before allowlisting and de-duplication.
struct Candidate {
    rule: usize,
    span: Range<usize>,
    redacted: String,
}

/// Whether `bytes` is binary (a NUL among the first bytes).
pub fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF)]).is_some()
}

/// Scans one file's contents. `path` is what findings report; `rel` (a suffix of it: the
/// path below the scanned root, so that a root under `/tmp/test/` is no fixture directory)
/// is what the path rules and the rules' scoping judge. Binary files only get the path rules.
pub fn scan(compiled: &Compiled, path: &str, rel: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let binary = is_binary(bytes);
    if let Some(rule) = paths::check(rel, bytes, binary) {
        findings.push(Finding {
            path: path.to_string(),
            rule,
            line: 0,
            column: None,
            redacted: String::new(),
        });
    }
    if binary {
        return findings;
    }
    let ctx = FileCtx::new(rel);
    let active = compiled.active_rules(bytes);
    let lines = Lines::new(bytes);
    let mut cands = Vec::new();
    for (i, rule) in RULES.iter().enumerate() {
        if !active[i] || !ctx.applies(rule) {
            continue;
        }
        let re = &compiled.regexes[i];
        if rule.check == Check::PrivateKey {
            for m in re.find_iter(bytes).take(MAX_CANDIDATES) {
                if let Some(body) = shapes::pem_body(bytes, m.end()) {
                    let label = String::from_utf8_lossy(m.as_bytes().trim_ascii_start())
                        .trim_matches('-')
                        .to_string();
                    cands.push(Candidate {
                        rule: i,
                        span: m.start()..body.end,
                        redacted: format!("{label} …({} base64 chars)", body.base64_chars),
                    });
                }
            }
            continue;
        }
        for caps in re.captures_iter(bytes) {
            if cands.len() >= MAX_CANDIDATES {
                break;
            }
            if let Some(c) = candidate(i, rule, &caps, bytes, &ctx, &lines) {
                cands.push(c);
            }
        }
    }
    if cands.is_empty() {
        return findings;
    }
    let excluded = allow::excluded_spans(bytes);
    cands.retain(|c| !excluded.iter().any(|x| overlaps(x, &c.span)));
    // A specific rule wins over a generic one on overlapping bytes.
    cands.sort_by_key(|c| (RULES[c.rule].priority, c.span.start));
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        let shadowed = kept.iter().any(|k| {
            overlaps(&k.span, &c.span)
                && (RULES[k.rule].priority < RULES[c.rule].priority || k.rule == c.rule)
        });
        if !shadowed {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| c.span.start);
    for c in kept {
        let (line, column) = lines.position(c.span.start);
        findings.push(Finding {
            path: path.to_string(),
            rule: RULES[c.rule].id,
            line,
            column: Some(column),
            redacted: c.redacted,
        });
    }
    findings
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Validates one regex match of a non-PEM rule.
fn candidate(
    i: usize,
    rule: &Rule,
    caps: &Captures<'_>,
    text: &[u8],
    ctx: &FileCtx,
    lines: &Lines,
) -> Option<Candidate> {
    let whole = caps.get(0)?;
    let secret = if rule.check == Check::Assignment {
        let quoted = (2..=4).find_map(|g| caps.get(g));
        match quoted {
            Some(m) => m,
            None if ctx.config => caps.get(5)?,
            None => return None,
        }
    } else {
        caps.get(rule.secret_group)?
    };
    let body = caps.get(rule.body_group).unwrap_or(secret).as_bytes();
    let value = secret.as_bytes();
    if rule.priority >= 1 && lines.line_len(secret.start()) > allow::MINIFIED_LINE {
        return None;
    }
    let ok = match rule.check {
        Check::Token => {
            bounded(text, whole.start(), secret.start(), secret.end())
                && entropy::shannon(body) >= entropy::bar_for_len(rule.min_entropy, body.len(), 1.2)
                && !allow::is_filler(body)
                && !allow::is_known_example(value)
        }
        Check::Jwt => {
            bounded(text, whole.start(), secret.start(), secret.end())
                && shapes::is_signed_jwt(value)
                && !allow::is_known_example(value)
        }
        Check::PrivateKey => false,
        Check::Assignment => {
            let name_end = caps.get(1)?.end();
            let name_start = extend_name_back(text, caps.get(1)?.start());
            is_secret_name(&text[name_start..name_end]) && generic_value_ok(value)
        }
        Check::EnvAssignment => {
            let value = unquote(value);
            is_secret_name(caps.get(1)?.as_bytes())
                && value.len() >= 6
                && !allow::is_placeholder(value)
        }
        Check::NpmrcAuth => value.len() >= 8 && !allow::is_placeholder(value),
        Check::UrlPassword => {
            value.len() >= 8
                && !allow::is_placeholder(value)
                && entropy::shannon(value) >= rule.min_entropy
                && value.iter().any(u8::is_ascii_alphabetic)
        }
    };
    ok.then(|| Candidate {
        rule: i,
        span: secret.range(),
        redacted: redact(unquote(value)),
    })
}

/// A generic secret value: random-looking and not a placeholder, URL, path, file name or UUID.
fn generic_value_ok(value: &[u8]) -> bool {
    let lower_path = value.iter().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'_' | b'-' | b'.')
    });
    let path_like = (value.starts_with(b"/") && lower_path)
        || value.starts_with(b"./")
        || value.starts_with(b"../")
        || value.starts_with(b"~/")
        || memchr::memmem::find(value, b"://").is_some()
        || has_file_extension(value);
    // JWTs are judged by their own rule (which knows the documented samples)
    let jwt = value.starts_with(b"eyJ") && value.iter().filter(|&&b| b == b'.').count() == 2;
    !path_like
        && !jwt
        && !allow::is_known_example(value)
        && !is_uuid(value)
        && !allow::is_placeholder(value)
        && !is_encoded_placeholder(value)
        && entropy::looks_random(value)
}

/// Whether a base64 value decodes to readable text that is a placeholder (docs encode
/// `not my real password` as a sample basic-auth value).
fn is_encoded_placeholder(value: &[u8]) -> bool {
    use base64::Engine as _;
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    engines.iter().any(|e| {
        e.decode(value).is_ok_and(|text| {
            text.len() >= 6
                && text.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
                && allow::is_placeholder(&text)
        })
    })
}

fn has_file_extension(value: &[u8]) -> bool {
    match memchr::memrchr(b'.', value) {
        Some(dot) => {
            let ext = &value[dot + 1..];
            (1..=5).contains(&ext.len()) && ext.iter().all(u8::is_ascii_lowercase)
        }
        None => false,
    }
}

fn is_uuid(value: &[u8]) -> bool {
    value.len() == 36
        && value.iter().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Walks back from `start` over identifier characters, to the start of the variable name
/// (at most [`MAX_NAME`] bytes: enough for any name, bounded on hostile input).
fn extend_name_back(text: &[u8], start: usize) -> usize {
    let floor = start.saturating_sub(MAX_NAME);
    let mut i = start;
    while i > floor
        && (text[i - 1].is_ascii_alphanumeric() || matches!(text[i - 1], b'_' | b'.' | b'$' | b'-'))
    {
        i -= 1;
    }
    i
}

fn unquote(value: &[u8]) -> &[u8] {
    let v = value.trim_ascii();
    match (v.first(), v.last()) {
        (Some(a @ (b'"' | b'\'')), Some(b)) if a == b && v.len() >= 2 => &v[1..v.len() - 1],
        _ => v,
    }
}

/// Whether a token stands alone: not glued to more token characters on either side (so a
/// match inside a base64 blob, a hash or a longer identifier does not count). When the regex
/// matched context before the secret (a name, `bot`), that context is the left boundary.
fn bounded(text: &[u8], whole_start: usize, start: usize, end: usize) -> bool {
    let left = whole_start < start
        || start == 0
        || !(text[start - 1].is_ascii_alphanumeric()
            || matches!(text[start - 1], b'_' | b'+' | b'-'));
    let right = end >= text.len()
        || !(text[end].is_ascii_alphanumeric()
            || matches!(text[end], b'_' | b'+' | b'/' | b'=' | b'-'));
    left && right
}

//! The rule table: one row per credential format or secret shape. A row is a literal keyword
//! prefilter (case-insensitive; the regex only runs on text that contains one), a regex, the
//! capture groups that hold the secret and its random body, and the checks that body must pass.
//!
//! Precision first: a rule is here when its format has a distinctive prefix or structure
//! (gitleaks' and Nosey Parker's lesson); unprefixed secrets are only looked for where a
//! secret-named variable is assigned a random-looking value.

/// How a rule's match is validated beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A token with a distinctive prefix: entropy of the body, no placeholder, not an example.
    Token,
    /// A JSON Web Token: the header must decode to JSON naming an algorithm other than `none`.
    Jwt,
    /// A PEM private-key block: at least 64 characters of base64 body up to its END line.
    PrivateKey,
    /// `secret_named = "value"` in code or config: the name must end in a secret word and the
    /// value must look random.
    Assignment,
    /// `SECRET_NAME=value` in a dotenv file: any real (non-placeholder) value.
    EnvAssignment,
    /// `_authToken=` / `_auth=` / `_password=` in an `.npmrc` (or yarn's equivalents).
    NpmrcAuth,
    /// A password in a URL's userinfo, `scheme://user:password@host`.
    UrlPassword,
}

/// Which files a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Every text file.
    Any,
    /// Dotenv files (`.env`, `.env.local`, `*.env`, `.envrc`), not their templates.
    Env,
    /// npm and yarn rc files.
    Npmrc,
}

/// One detection rule.
#[derive(Debug)]
pub struct Rule {
    /// Stable id, reported in findings, e.g. `github-pat`.
    pub id: &'static str,
    /// What the rule detects, for humans.
    pub description: &'static str,
    /// Lowercase literals; the regex runs only on text containing at least one of them.
    pub keywords: &'static [&'static str],
    /// The regex (Rust `regex` syntax, matched against bytes).
    pub pattern: &'static str,
    /// The capture group holding the whole secret (what the finding points at and redacts).
    pub secret_group: usize,
    /// The capture group holding the random part (what entropy and placeholder checks judge).
    pub body_group: usize,
    /// Minimum Shannon entropy of the body, 0 for none (lowered for short bodies, see
    /// [`crate::entropy::bar_for_len`]).
    pub min_entropy: f64,
    /// The validation beyond the regex.
    pub check: Check,
    /// Which files the rule runs on.
    pub files: Files,
    /// Generic rules yield to specific ones on the same bytes and skip minified code and
    /// lockfiles; higher numbers yield to lower ones.
    pub priority: u8,
    /// Whether findings in test/fixture/example directories are dropped (key material and
    /// generic shapes: crypto libraries' test vectors live there).
    pub fixture_exempt: bool,
}

const fn token(
    id: &'static str,
    description: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    min_entropy: f64,
) -> Rule {
    Rule {
        id,
        description,
        keywords,
        pattern,
        secret_group: 1,
        body_group: 2,
        min_entropy,
        check: Check::Token,
        files: Files::Any,
        priority: 0,
        fixture_exempt: false,
    }
}

/// Every content rule, most specific first.
pub static RULES: &[Rule] = &[
    token(
        "aws-access-key-id",
        "AWS access key id (AKIA/ASIA/ABIA/ACCA/A3T…)",
        &["akia", "asia", "abia", "acca", "a3t"],
        r"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)([A-Z2-7]{16}))",
        3.0,
    ),
    Rule {
        secret_group: 1,
        body_group: 1,
        ..token(
            "aws-secret-access-key",
            "AWS secret access key near an aws_secret_access_key-like name, on the same line",
            &["secret_access_key", "secretaccesskey", "secret-access-key"],
            r#"(?i:secret[_-]?access[_-]?key)[^\r\n]{0,80}?["'=:\s]([A-Za-z0-9/+]{40})"#,
            4.0,
        )
    },
    token(
        "github-pat",
        "GitHub token (ghp_/gho_/ghu_/ghs_/ghr_)",
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        r"(gh[pousr]_([A-Za-z0-9]{36}))",
        3.0,
    ),
    token(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token (github_pat_)",
        &["github_pat_"],
        r"(github_pat_([A-Za-z0-9_]{82}))",
        3.0,
    ),
    token(
        "gitlab-token",
        "GitLab token (glpat-, glrt-, gldt-, glptt-, …)",
        &[
            "glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "gloas-", "glft-", "glimt-", "glsoat-",
            "glagent-",
        ],
        r"(gl(?:pat|dt|rt|rtr|ptt|cbt|oas|ft|imt|soat|agent)-([A-Za-z0-9_-]{20,64}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?))",
        3.0,
    ),
    token(
        "npm-token",
        "npm access token (npm_)",
        &["npm_"],
        r"(npm_([A-Za-z0-9]{36}))",
        3.0,
    ),
    token(
        "slack-token",
        "Slack bot, user or legacy token (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-)",
        &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe"],
        r"((?:xoxe\.)?xox[abeprs]-(?:[0-9]{1,14}-){1,4}([A-Za-z0-9]{10,200}))",
        3.0,
    ),
    token(
        "slack-app-token",
        "Slack app-level token (xapp-)",
        &["xapp-"],
        r"(xapp-[0-9]-[A-Z0-9]{8,14}-[0-9]{10,14}-([a-f0-9]{32,80}))",
        3.0,
    ),
    token(
        "slack-webhook",
        "Slack incoming-webhook URL",
        &["hooks.slack.com"],
        r"(https?://hooks\.slack\.com/(?:services|workflows|triggers)/(T[A-Z0-9]{6,12}/[AB][A-Z0-9]{6,12}/[A-Za-z0-9]{20,40}))",
        3.0,
    ),
    token(
        "discord-webhook",
        "Discord webhook URL",
        &["/api/webhooks/"],
        r"(https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/([A-Za-z0-9_-]{60,68}))",
        3.5,
    ),
    token(
        "stripe-secret-key",
        "Stripe secret or restricted key (sk_live_, rk_live_, sk_test_, …)",
        &[
            "sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_",
        ],
        r"((?:sk|rk)_(?:live|test|prod)_([A-Za-z0-9]{20,247}))",
        3.0,
    ),
    token(
        "stripe-webhook-secret",
        "Stripe webhook signing secret (whsec_)",
        &["whsec_"],
        r"(whsec_([A-Za-z0-9]{32,64}))",
        3.0,
    ),
    token(
        "google-api-key",
        "Google API key (AIza)",
        &["aiza"],
        r"(AIza([0-9A-Za-z_-]{35}))",
        3.5,
    ),
    token(
        "google-oauth-client-secret",
        "Google OAuth client secret (GOCSPX-)",
        &["gocspx-"],
        r"(GOCSPX-([A-Za-z0-9_-]{28}))",
        3.0,
    ),
    token(
        "openai-api-key",
        "OpenAI API key (sk-…T3BlbkFJ…)",
        &["t3blbkfj"],
        r"(sk-(?:proj-|svcacct-|admin-|None-)?([A-Za-z0-9_-]{10,200}T3BlbkFJ[A-Za-z0-9_-]{10,200}))",
        3.5,
    ),
    token(
        "anthropic-api-key",
        "Anthropic API key (sk-ant-api03-, sk-ant-admin01-)",
        &["sk-ant-"],
        r"(sk-ant-(?:api|admin)[0-9]{2}-([A-Za-z0-9_-]{80,120}))",
        3.5,
    ),
    token(
        "sendgrid-api-key",
        "SendGrid API key (SG.)",
        &["sg."],
        r"(SG\.([A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}))",
        3.5,
    ),
    token(
        "twilio-api-key",
        "Twilio API key SID (SK + 32 hex)",
        &["sk"],
        r"(SK([0-9a-fA-F]{32}))",
        3.0,
    ),
    token(
        "shopify-token",
        "Shopify access token (shpat_, shpca_, shppa_, shpss_)",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        r"(shp(?:at|ca|pa|ss)_([a-fA-F0-9]{32}))",
        3.0,
    ),
    token(
        "huggingface-token",
        "Hugging Face access token (hf_)",
        &["hf_"],
        r"(hf_([A-Za-z]{34}))",
        3.8,
    ),
    token(
        "pypi-token",
        "PyPI upload token (pypi-AgEIcHlwaS5vcmc…)",
        &["pypi-ageichlwas5vcmc"],
        r"(pypi-AgEIcHlwaS5vcmc([A-Za-z0-9_-]{50,}))",
        3.5,
    ),
    token(
        "docker-hub-pat",
        "Docker Hub personal access token (dckr_pat_)",
        &["dckr_pat_"],
        r"(dckr_pat_([A-Za-z0-9_-]{27}))",
        3.0,
    ),
    token(
        "digitalocean-token",
        "DigitalOcean token (dop_v1_, doo_v1_, dor_v1_)",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"(do[opr]_v1_([a-f0-9]{64}))",
        3.0,
    ),
    token(
        "vault-token",
        "HashiCorp Vault token (hvs., hvb.)",
        &["hvs.", "hvb."],
        r"(hv[sb]\.([A-Za-z0-9_-]{24,200}))",
        3.5,
    ),
    token(
        "doppler-token",
        "Doppler token (dp.pt., dp.st., …)",
        &[
            "dp.pt.",
            "dp.st.",
            "dp.sa.",
            "dp.ct.",
            "dp.scim.",
            "dp.audit.",
        ],
        r"(dp\.(?:pt|st|sa|ct|scim|audit)\.([A-Za-z0-9]{40,44}))",
        3.5,
    ),
    token(
        "age-secret-key",
        "age encryption secret key (AGE-SECRET-KEY-1)",
        &["age-secret-key-1"],
        r"(AGE-SECRET-KEY-1([QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}))",
        3.0,
    ),
    token(
        "postman-api-key",
        "Postman API key (PMAK-)",
        &["pmak-"],
        r"(PMAK-([a-f0-9]{24}-[a-f0-9]{34}))",
        3.0,
    ),
    token(
        "telegram-bot-token",
        "Telegram bot token (id:AA…)",
        &[":aa"],
        r"(?:bot)?([0-9]{8,10}:(AA[A-Za-z0-9_-]{33}))",
        3.5,
    ),
    token(
        "linear-api-key",
        "Linear API key (lin_api_)",
        &["lin_api_"],
        r"(lin_api_([A-Za-z0-9]{40}))",
        3.5,
    ),
    token(
        "square-token",
        "Square access token or OAuth secret (sq0atp-, sq0csp-)",
        &["sq0atp-", "sq0csp-"],
        r"(sq0(?:atp|csp)-([A-Za-z0-9_-]{22,43}))",
        3.5,
    ),
    token(
        "grafana-token",
        "Grafana service-account or cloud token (glsa_, glc_)",
        &["glsa_", "glc_"],
        r"((?:glsa_|glc_)([A-Za-z0-9+/_]{32,400}={0,2}))",
        3.5,
    ),
    token(
        "new-relic-user-key",
        "New Relic user API key (NRAK-)",
        &["nrak-"],
        r"(NRAK-([A-Z0-9]{27}))",
        3.0,
    ),
    token(
        "databricks-token",
        "Databricks personal access token (dapi + 32 hex)",
        &["dapi"],
        r"(dapi([a-f0-9]{32}))",
        3.0,
    ),
    token(
        "supabase-token",
        "Supabase personal access token (sbp_)",
        &["sbp_"],
        r"(sbp_([a-f0-9]{40}))",
        3.0,
    ),
    Rule {
        secret_group: 1,
        body_group: 1,
        ..token(
            "azure-storage-key",
            "Azure storage account key in a connection string (AccountKey=)",
            &["accountkey="],
            r"AccountKey=([A-Za-z0-9+/]{86}==)",
            4.0,
        )
    },
    Rule {
        id: "private-key",
        description: "PEM private key block (RSA, EC, DSA, OpenSSH, PKCS#8, PGP) with a real body",
        keywords: &["private key"],
        pattern: r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
        secret_group: 0,
        body_group: 0,
        min_entropy: 4.5,
        check: Check::PrivateKey,
        files: Files::Any,
        priority: 0,
        fixture_exempt: true,
    },
    Rule {
        id: "jwt",
        description: "JSON Web Token with a decodable header and a signature",
        keywords: &["eyj"],
        pattern: r"(eyJ[A-Za-z0-9_-]{10,1000}\.(eyJ[A-Za-z0-9_-]{10,4000})\.[A-Za-z0-9_-]{16,1000})",
        secret_group: 1,
        body_group: 2,
        min_entropy: 3.0,
        check: Check::Jwt,
        files: Files::Any,
        priority: 0,
        fixture_exempt: true,
    },
    Rule {
        id: "npmrc-auth",
        description: "credentials in an .npmrc or .yarnrc (_authToken, _auth, _password, npmAuthToken)",
        keywords: &[
            "_authtoken",
            "_auth",
            "_password",
            "npmauthtoken",
            "npmauthident",
        ],
        pattern: r#"(?m)^[ \t]*(?:["']?//[^\s=]*:)?(?:_authToken|_auth|_password|npmAuthToken|npmAuthIdent)["']?[ \t]*[=:][ \t]*["']?([^\s"']+)"#,
        secret_group: 1,
        body_group: 1,
        min_entropy: 0.0,
        check: Check::NpmrcAuth,
        files: Files::Npmrc,
        priority: 1,
        fixture_exempt: true,
    },
    Rule {
        id: "env-assignment",
        description: "secret-named variable assigned a value in a dotenv file",
        keywords: &["secret", "token", "pass", "pwd", "key", "credential"],
        pattern: r#"(?m)^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*("[^"\r\n]*"|'[^'\r\n]*'|[^\s#]*)"#,
        secret_group: 2,
        body_group: 2,
        min_entropy: 0.0,
        check: Check::EnvAssignment,
        files: Files::Env,
        priority: 1,
        fixture_exempt: true,
    },
    Rule {
        id: "url-credentials",
        description: "password in a URL (scheme://user:password@host)",
        keywords: &["://"],
        pattern: r#"(?i:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|ftps?|sftp|smtps?|https?|ldaps?)://[^\s:@/"'`<>]{1,100}:([^\s:@/"'`<>]{1,200})@[A-Za-z0-9.-]+"#,
        secret_group: 1,
        body_group: 1,
        min_entropy: 3.0,
        check: Check::UrlPassword,
        files: Files::Any,
        priority: 1,
        fixture_exempt: true,
    },
    Rule {
        id: "secret-assignment",
        description: "secret-named variable (…_SECRET, apiKey, password, token, …) assigned a random-looking value",
        keywords: &["secret", "token", "pass", "pwd", "key", "credential"],
        pattern: r#"((?i:secret|token|passw(?:or)?d|pwd|pass(?:phrase)?|key|credentials?)[A-Za-z0-9_$-]{0,40})["']?\s*(?::=|=>|=|:)\s*(?:"([^"\\\r\n]{1,300})"|'([^'\\\r\n]{1,300})'|`([^`\\\r\n$]{1,300})`|([A-Za-z0-9+/=_.~!@#%^&*-]{1,300}))"#,
        // group 1 is the end of the name; the value is whichever of groups 2–5 matched
        // (double, single, back quotes; unquoted only in config files)
        secret_group: 2,
        body_group: 2,
        min_entropy: 0.0,
        check: Check::Assignment,
        files: Files::Any,
        priority: 2,
        fixture_exempt: true,
    },
];

/// Whether a variable name is one a secret is stored under: its last word is a secret word
/// (`password`, `token`, `secret`, `apiKey`, `PRIVATE_KEY`, …), not merely contains one
/// (`tokenizer`, `passwordField`, `keyboard`), and it is not a pagination or CSRF token.
pub fn is_secret_name(name: &[u8]) -> bool {
    let words = split_words(name);
    let Some(last) = words.last() else {
        return false;
    };
    let prev = if words.len() >= 2 {
        words[words.len() - 2].as_str()
    } else {
        ""
    };
    if words.iter().any(|w| matches!(w.as_str(), "public" | "pub")) {
        return false;
    }
    match last.as_str() {
        "secret" | "password" | "passwd" | "pwd" | "pass" | "passphrase" | "credential"
        | "credentials" | "apikey" | "apisecret" | "secretkey" | "privatekey" | "accesskey"
        | "authtoken" | "accesstoken" | "refreshtoken" | "clientsecret" => true,
        "token" => !matches!(
            prev,
            "next"
                | "page"
                | "continuation"
                | "cancel"
                | "csrf"
                | "xsrf"
                | "sync"
                | "cursor"
                | "pagination"
                | "start"
                | "end"
                | "last"
                | "first"
                | "prev"
                | "previous"
                | "current"
                | "lexer"
                | "parser"
                | "eof"
                | "the"
        ),
        "key" => matches!(
            prev,
            "api"
                | "access"
                | "secret"
                | "private"
                | "auth"
                | "signing"
                | "encryption"
                | "client"
                | "master"
                | "app"
                | "service"
                | "account"
                | "storage"
                | "subscription"
                | "license"
        ),
        _ => false,
    }
}

/// Splits `fooBar_baz-qux.API_KEY` into lowercase words: foo, bar, baz, qux, api, key.
fn split_words(name: &[u8]) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for &b in name {
        if b.is_ascii_alphabetic() {
            if b.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            cur.push(char::from(b.to_ascii_lowercase()));
            prev_lower = b.is_ascii_lowercase();
        } else {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_rule_has_keywords() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
        for r in RULES {
            assert!(!r.keywords.is_empty(), "{}", r.id);
            assert!(
                r.keywords.iter().all(|k| k.to_ascii_lowercase() == *k),
                "{}",
                r.id
            );
        }
    }

    #[test]
    fn secret_names() {
        for n in [
            "password",
            "DB_PASSWORD",
            "apiKey",
            "api_key",
            "API-KEY",
            "clientSecret",
            "GITHUB_TOKEN",
            "config.auth.token",
            "SECRET_KEY",
            "privateKey",
            "accessToken",
            "apikey",
            "STRIPE_SECRET",
        ] {
            assert!(is_secret_name(n.as_bytes()), "{n}");
        }
        for n in [
            "tokenizer",
            "passwordField",
            "keyboard",
            "key",
            "publicKey",
            "nextToken",
            "pageToken",
            "csrfToken",
            "secretName",
            "tokens",
            "monkey",
            "PUBLIC_API_KEY",
        ] {
            assert!(!is_secret_name(n.as_bytes()), "{n}");
        }
    }
}

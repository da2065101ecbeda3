//! Random but format-valid secrets for the detector's tests, generated at run time so that
//! no credential-shaped literal lives in the repository.

#![allow(dead_code, reason = "each test binary uses a different part")]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const DIGITS: &[u8] = b"0123456789";
pub const HEX: &[u8] = b"0123456789abcdef";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const BECH32_UPPER: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

/// A seeded generator of secrets.
pub struct Gen {
    rng: StdRng,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    pub fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())]))
            .collect()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.random()).collect()
    }

    /// A PEM private key of the given label with a random body of `n` base64 characters.
    pub fn pem(&mut self, label: &str, n: usize) -> String {
        let body = self.chars(B64, n);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// A signed-looking JWT with random claims.
    pub fn jwt(&mut self) -> String {
        use base64::Engine as _;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let alg = *self.pick(&["HS256", "RS256", "ES256", "HS512"]);
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let payload = format!(
            r#"{{"sub":"{}","iat":{},"exp":{},"scope":"{}"}}"#,
            self.chars(ALNUM, 12),
            1_700_000_000 + self.range(0, 10_000_000),
            1_800_000_000 + self.range(0, 10_000_000),
            self.chars(LOWER, 8)
        );
        let n = self.range(43, 86);
        let sig = self.chars(B64URL, n);
        format!("{}.{}.{sig}", enc(&header), enc(&payload))
    }

    /// A password as people choose them for services: mixed classes, some symbols.
    pub fn password(&mut self) -> String {
        let n = self.range(14, 24);
        let mut p = self.chars(ALNUM, n);
        p.push(char::from(*self.pick(b"!%^*-_+")));
        p.push_str(&self.chars(DIGITS, 2));
        p
    }
}

/// One supported secret format: its rule id and a generator.
pub struct Format {
    pub rule: &'static str,
    /// An environment-variable name a user would store it under.
    pub env_name: &'static str,
    pub make: fn(&mut Gen) -> String,
}

/// Every distinctive-prefix format the detector supports.
pub fn token_formats() -> Vec<Format> {
    vec![
        Format {
            rule: "aws-access-key-id",
            env_name: "AWS_ACCESS_KEY_ID",
            make: |g| format!("{}{}", g.pick(&["AKIA", "ASIA"]), g.chars(BASE32, 16)),
        },
        Format {
            rule: "aws-secret-access-key",
            env_name: "AWS_SECRET_ACCESS_KEY",
            make: |g| g.chars(B64, 40),
        },
        Format {
            rule: "github-pat",
            env_name: "GITHUB_TOKEN",
            make: |g| {
                format!(
                    "{}_{}",
                    g.pick(&["ghp", "gho", "ghu", "ghs", "ghr"]),
                    g.chars(ALNUM, 36)
                )
            },
        },
        Format {
            rule: "github-fine-grained-pat",
            env_name: "GH_TOKEN",
            make: |g| format!("github_pat_{}_{}", g.chars(ALNUM, 22), g.chars(ALNUM, 59)),
        },
        Format {
            rule: "gitlab-token",
            env_name: "GITLAB_TOKEN",
            make: |g| {
                format!(
                    "{}-{}",
                    g.pick(&["glpat", "glrt", "gldt", "glptt"]),
                    g.chars(ALNUM, 20)
                )
            },
        },
        Format {
            rule: "npm-token",
            env_name: "NPM_TOKEN",
            make: |g| format!("npm_{}", g.chars(ALNUM, 36)),
        },
        Format {
            rule: "slack-token",
            env_name: "SLACK_BOT_TOKEN",
            make: |g| {
                format!(
                    "{}-{}-{}-{}",
                    g.pick(&["xoxb", "xoxp"]),
                    g.chars(DIGITS, 12),
                    g.chars(DIGITS, 13),
                    g.chars(ALNUM, 24)
                )
            },
        },
        Format {
            rule: "slack-app-token",
            env_name: "SLACK_APP_TOKEN",
            make: |g| {
                format!(
                    "xapp-1-A{}-{}-{}",
                    g.chars(UPPER_ALNUM, 10),
                    g.chars(DIGITS, 13),
                    g.chars(HEX, 64)
                )
            },
        },
        Format {
            rule: "slack-webhook",
            env_name: "SLACK_WEBHOOK_URL",
            make: |g| {
                format!(
                    "https://hooks.slack.com/services/T{}/B{}/{}",
                    g.chars(UPPER_ALNUM, 10),
                    g.chars(UPPER_ALNUM, 10),
                    g.chars(ALNUM, 24)
                )
            },
        },
        Format {
            rule: "discord-webhook",
            env_name: "DISCORD_WEBHOOK",
            make: |g| {
                format!(
                    "https://discord.com/api/webhooks/{}/{}",
                    g.chars(DIGITS, 18),
                    g.chars(B64URL, 68)
                )
            },
        },
        Format {
            rule: "stripe-secret-key",
            env_name: "STRIPE_SECRET_KEY",
            make: |g| {
                let n = g.range(24, 99);
                format!(
                    "{}_{}",
                    g.pick(&["sk_live", "rk_live", "sk_test"]),
                    g.chars(ALNUM, n)
                )
            },
        },
        Format {
            rule: "stripe-webhook-secret",
            env_name: "STRIPE_WEBHOOK_SECRET",
            make: |g| format!("whsec_{}", g.chars(ALNUM, 32)),
        },
        Format {
            rule: "google-api-key",
            env_name: "GOOGLE_API_KEY",
            make: |g| format!("AIza{}", g.chars(B64URL, 35)),
        },
        Format {
            rule: "google-oauth-client-secret",
            env_name: "GOOGLE_CLIENT_SECRET",
            make: |g| format!("GOCSPX-{}", g.chars(B64URL, 28)),
        },
        Format {
            rule: "openai-api-key",
            env_name: "OPENAI_API_KEY",
            make: |g| {
                if g.range(0, 1) == 0 {
                    format!(
                        "sk-proj-{}T3BlbkFJ{}",
                        g.chars(B64URL, 74),
                        g.chars(B64URL, 74)
                    )
                } else {
                    format!("sk-{}T3BlbkFJ{}", g.chars(ALNUM, 20), g.chars(ALNUM, 20))
                }
            },
        },
        Format {
            rule: "anthropic-api-key",
            env_name: "ANTHROPIC_API_KEY",
            make: |g| format!("sk-ant-api03-{}AA", g.chars(B64URL, 93)),
        },
        Format {
            rule: "sendgrid-api-key",
            env_name: "SENDGRID_API_KEY",
            make: |g| format!("SG.{}.{}", g.chars(B64URL, 22), g.chars(B64URL, 43)),
        },
        Format {
            rule: "twilio-api-key",
            env_name: "TWILIO_API_KEY",
            make: |g| format!("SK{}", g.chars(HEX, 32)),
        },
        Format {
            rule: "shopify-token",
            env_name: "SHOPIFY_ACCESS_TOKEN",
            make: |g| format!("shpat_{}", g.chars(HEX, 32)),
        },
        Format {
            rule: "huggingface-token",
            env_name: "HF_TOKEN",
            make: |g| {
                let letters = [UPPER, LOWER].concat();
                format!("hf_{}", g.chars(&letters, 34))
            },
        },
        Format {
            rule: "pypi-token",
            env_name: "PYPI_TOKEN",
            make: |g| format!("pypi-AgEIcHlwaS5vcmc{}", g.chars(B64URL, 70)),
        },
        Format {
            rule: "docker-hub-pat",
            env_name: "DOCKERHUB_TOKEN",
            make: |g| format!("dckr_pat_{}", g.chars(B64URL, 27)),
        },
        Format {
            rule: "digitalocean-token",
            env_name: "DIGITALOCEAN_TOKEN",
            make: |g| format!("dop_v1_{}", g.chars(HEX, 64)),
        },
        Format {
            rule: "vault-token",
            env_name: "VAULT_TOKEN",
            make: |g| format!("hvs.{}", g.chars(B64URL, 90)),
        },
        Format {
            rule: "doppler-token",
            env_name: "DOPPLER_TOKEN",
            make: |g| format!("dp.st.{}", g.chars(ALNUM, 43)),
        },
        Format {
            rule: "age-secret-key",
            env_name: "SOPS_AGE_KEY",
            make: |g| format!("AGE-SECRET-KEY-1{}", g.chars(BECH32_UPPER, 58)),
        },
        Format {
            rule: "postman-api-key",
            env_name: "POSTMAN_API_KEY",
            make: |g| format!("PMAK-{}-{}", g.chars(HEX, 24), g.chars(HEX, 34)),
        },
        Format {
            rule: "telegram-bot-token",
            env_name: "TELEGRAM_BOT_TOKEN",
            make: |g| format!("{}:AA{}", g.chars(DIGITS, 10), g.chars(B64URL, 33)),
        },
        Format {
            rule: "linear-api-key",
            env_name: "LINEAR_API_KEY",
            make: |g| format!("lin_api_{}", g.chars(ALNUM, 40)),
        },
        Format {
            rule: "square-token",
            env_name: "SQUARE_ACCESS_TOKEN",
            make: |g| format!("sq0atp-{}", g.chars(B64URL, 22)),
        },
        Format {
            rule: "grafana-token",
            env_name: "GRAFANA_TOKEN",
            make: |g| format!("glsa_{}_{}", g.chars(ALNUM, 32), g.chars(HEX, 8)),
        },
        Format {
            rule: "new-relic-user-key",
            env_name: "NEW_RELIC_API_KEY",
            make: |g| format!("NRAK-{}", g.chars(UPPER_ALNUM, 27)),
        },
        Format {
            rule: "databricks-token",
            env_name: "DATABRICKS_TOKEN",
            make: |g| format!("dapi{}", g.chars(HEX, 32)),
        },
        Format {
            rule: "supabase-token",
            env_name: "SUPABASE_ACCESS_TOKEN",
            make: |g| format!("sbp_{}", g.chars(HEX, 40)),
        },
        Format {
            rule: "jwt",
            env_name: "SESSION_JWT",
            make: Gen::jwt,
        },
        Format {
            rule: "azure-storage-key",
            env_name: "AZURE_STORAGE_CONNECTION_STRING",
            make: |g| {
                format!(
                    "DefaultEndpointsProtocol=https;AccountName={};AccountKey={}==;EndpointSuffix=core.windows.net",
                    g.chars(LOWER, 12),
                    g.chars(B64, 86)
                )
            },
        },
    ]
}

/// Private-key PEM labels and the body length (base64 characters) of a realistic key.
pub const PEM_KINDS: &[(&str, usize)] = &[
    ("RSA PRIVATE KEY", 1592),
    ("PRIVATE KEY", 1624),
    ("EC PRIVATE KEY", 160),
    ("OPENSSH PRIVATE KEY", 540),
    ("ENCRYPTED PRIVATE KEY", 1700),
    ("DSA PRIVATE KEY", 880),
];

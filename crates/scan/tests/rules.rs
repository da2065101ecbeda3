//! Every rule on its own: a positive and near misses (placeholder bodies, tokens glued into
//! longer runs, truncated bodies), then the allowlists: lockfiles, minified bundles, base64
//! assets, source maps, crypto libraries' test fixtures, documented examples.

mod support;

use support::{ALNUM, B64, Gen, HEX, token_formats};
use tiercache_scan::{Finding, Scanner};

fn scanner() -> Scanner {
    Scanner::new().unwrap()
}

fn rules_of(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.rule).collect()
}

/// Replaces the random characters of a token (after its first 8) with `x`.
fn placeholder_of(secret: &str) -> String {
    secret
        .char_indices()
        .map(|(i, c)| {
            if i >= 8 && c.is_ascii_alphanumeric() {
                'x'
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn every_token_format_is_found_where_it_stands_alone() {
    let s = scanner();
    let mut g = Gen::new(1);
    for f in token_formats() {
        for _ in 0..20 {
            let secret = (f.make)(&mut g);
            let text = format!(
                "# config\n{} = \"{secret}\"\n",
                f.env_name.to_ascii_lowercase()
            );
            let found = s.scan_bytes("src/config.py", text.as_bytes());
            assert_eq!(rules_of(&found), [f.rule], "{}: {secret}", f.rule);
            assert_eq!(found[0].line, 2);
            assert!(!found[0].redacted.contains(&secret[4.min(secret.len())..]));
        }
    }
}

#[test]
fn placeholders_and_glued_tokens_are_not_found() {
    let s = scanner();
    let mut g = Gen::new(2);
    for f in token_formats() {
        let secret = (f.make)(&mut g);
        let placeholder = placeholder_of(&secret);
        let text = format!("token = \"{placeholder}\"\n");
        assert!(
            s.scan_bytes("README.md", text.as_bytes()).is_empty(),
            "{}: placeholder {placeholder}",
            f.rule
        );
        if f.rule == "azure-storage-key" {
            continue; // the key sits inside a connection string; gluing its ends changes nothing
        }
        let glued = format!("blob = \"Z9{secret}Q7\"\n");
        let found = s.scan_bytes("lib/data.js", glued.as_bytes());
        assert!(
            !rules_of(&found).contains(&f.rule),
            "{}: glued {glued}",
            f.rule
        );
    }
}

#[test]
fn near_miss_shapes() {
    let s = scanner();
    let mut g = Gen::new(3);
    let cases = [
        // one character short
        format!("ghp_{}", g.chars(ALNUM, 35)),
        format!("npm_{}", g.chars(ALNUM, 35)),
        format!("AKIA{}", g.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 15)),
        format!("AIza{}", g.chars(ALNUM, 34)),
        // wrong alphabet or case
        format!("akia{}", g.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        format!("GHP_{}", g.chars(ALNUM, 36)),
        format!("sk_live{}", g.chars(ALNUM, 30)),
        format!("xoxb-{}", g.chars(ALNUM, 30)),
        // low entropy bodies
        format!("AKIA{}", "A".repeat(16)),
        format!(
            "ghp_{}",
            "0123456789".repeat(4).get(..36).unwrap_or_default()
        ),
        // names, not tokens
        "npm_config_registry_url_for_the_scope_x".to_string(),
        "hf_hub_download_with_retries".to_string(),
    ];
    for c in cases {
        let text = format!("value = \"{c}\"\n");
        assert!(s.scan_bytes("src/a.py", text.as_bytes()).is_empty(), "{c}");
    }
}

#[test]
fn vendors_documented_examples_are_not_found() {
    let s = scanner();
    let text = "\
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
const stripe = require('stripe')('sk_test_4eC39HqLyjWDarjtT1zdp7dc');
Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c
SLACK_WEBHOOK=https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX
";
    assert_eq!(
        rules_of(&s.scan_bytes("docs/setup.md", text.as_bytes())),
        Vec::<&str>::new()
    );
}

#[test]
fn private_keys_need_a_real_body() {
    let s = scanner();
    let mut g = Gen::new(4);
    let pem = g.pem("RSA PRIVATE KEY", 1592);
    let found = s.scan_bytes("deploy/key.txt", format!("key:\n{pem}").as_bytes());
    assert_eq!(rules_of(&found), ["private-key"]);
    assert_eq!(found[0].line, 2);
    assert!(found[0].redacted.starts_with("BEGIN RSA PRIVATE KEY "));
    // PGP armour with headers
    let pgp = format!(
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{}\n=Ab3d\n-----END PGP PRIVATE KEY BLOCK-----\n",
        g.chars(B64, 64 * 10)
    );
    assert_eq!(
        rules_of(&s.scan_bytes("keys.asc", pgp.as_bytes())),
        ["private-key"]
    );
    // placeholders in docs
    for doc in [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----\n",
        "if (pem.startsWith('-----BEGIN PRIVATE KEY-----')) { parse(pem) }\n",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
    ] {
        assert!(
            s.scan_bytes("README.md", doc.as_bytes()).is_empty(),
            "{doc}"
        );
    }
}

#[test]
fn jwts_need_a_decodable_header_and_a_signature() {
    let s = scanner();
    let mut g = Gen::new(5);
    let jwt = g.jwt();
    let found = s.scan_bytes(
        "src/api.ts",
        format!("fetch(url, {{ headers: {{ a: '{jwt}' }} }})\n").as_bytes(),
    );
    assert_eq!(rules_of(&found), ["jwt"]);
    let unsigned = jwt.rsplit_once('.').unwrap().0.to_string() + ".";
    assert!(s.scan_bytes("src/api.ts", unsigned.as_bytes()).is_empty());
    let fake = format!(
        "eyJ{}.eyJ{}.{}",
        g.chars(ALNUM, 30),
        g.chars(ALNUM, 40),
        g.chars(ALNUM, 43)
    );
    assert!(s.scan_bytes("src/api.ts", fake.as_bytes()).is_empty());
}

#[test]
fn secret_named_assignments_need_random_values() {
    let s = scanner();
    let mut g = Gen::new(6);
    let value = g.chars(ALNUM, 32);
    for (path, text) in [
        ("src/a.js", format!("const apiKey = '{value}';\n")),
        ("src/a.ts", format!("  clientSecret: \"{value}\",\n")),
        (
            "config.json",
            format!("{{\"client_secret\": \"{value}\"}}\n"),
        ),
        ("config.yml", format!("auth:\n  password: {value}\n")),
        ("app.py", format!("SECRET_KEY = '{value}'\n")),
        ("main.go", format!("\tapiToken := \"{value}\"\n")),
    ] {
        assert_eq!(
            rules_of(&s.scan_bytes(path, text.as_bytes())),
            ["secret-assignment"],
            "{text}"
        );
    }
    for text in [
        // names that are not secret names
        format!("const tokenizer = '{value}';\n"),
        format!("const keyboardLayout = '{value}';\n"),
        format!("const publicKey = '{value}';\n"),
        format!("const nextPageToken = '{value}';\n"),
        // values that are not secrets
        "const password = 'correct horse battery staple';\n".into(),
        "const apiKey = process.env.API_KEY;\n".into(),
        "const apiKey = '<YOUR_API_KEY>';\n".into(),
        "const apiKey = '${API_KEY}';\n".into(),
        "const secret = 'your-secret-goes-here-1234';\n".into(),
        "const token = 'xxxxxxxxxxxxxxxxxxxxxxxx';\n".into(),
        "const passwordHashAlgorithm = 'argon2id';\n".into(),
        "const secretKeyPath = '/etc/app/secret.key';\n".into(),
        "const tokenUrl = 'https://auth.example.com/oauth/token';\n".into(),
        "const apiKey = '123e4567-e89b-12d3-a456-426614174000';\n".into(),
        "const nextLastSignificantToken = '?NonExpressionParenKeyword';\n".into(),
        "if (token === 'q8Zk3LmP0xVt7RbN2wYcA1') {}\n".into(),
        // unquoted values count only in config files
        format!("password: {value}\n"),
    ] {
        assert!(
            s.scan_bytes("src/a.js", text.as_bytes()).is_empty(),
            "{text}"
        );
    }
}

#[test]
fn dotenv_values_url_passwords_and_npmrc_auth() {
    let s = scanner();
    let mut g = Gen::new(7);
    let pw = g.password();
    let env = format!("PORT=3000\nDB_PASSWORD={pw}\nAPI_URL=https://api.example.com\n");
    assert_eq!(
        rules_of(&s.scan_bytes(".env.local", env.as_bytes())),
        ["dotenv-file", "env-assignment"]
    );
    // a template: only a random-looking value counts, and the file itself is fine
    let template = "PORT=3000\nDB_PASSWORD=changeme\nSECRET_KEY=\n";
    assert!(s.scan_bytes(".env.example", template.as_bytes()).is_empty());
    let url = format!("DATABASE_URL=postgres://app:{pw}@db.internal:5432/app\n");
    assert_eq!(
        rules_of(&s.scan_bytes("deploy/app.conf", url.as_bytes())),
        ["url-credentials"]
    );
    for doc in [
        "mongodb://user:password@localhost:27017/db",
        "postgres://postgres:postgres@localhost/test",
        "https://user:pass@example.com/",
        "redis://:${REDIS_PASSWORD}@cache:6379",
    ] {
        assert!(
            s.scan_bytes("README.md", doc.as_bytes()).is_empty(),
            "{doc}"
        );
    }
    let token = g.chars(HEX, 32);
    let npmrc = format!("//npm.acme.example/:_authToken={token}\n");
    assert_eq!(
        rules_of(&s.scan_bytes("app/.npmrc", npmrc.as_bytes())),
        ["npmrc-auth"]
    );
    let via_env =
        "//npm.acme.example/:_authToken=${NPM_TOKEN}\nregistry=https://npm.acme.example/\n";
    assert!(s.scan_bytes("app/.npmrc", via_env.as_bytes()).is_empty());
    // the same line outside an rc file is left to the other rules
    assert!(s.scan_bytes("docs/npm.md", npmrc.as_bytes()).is_empty());
}

#[test]
fn lockfiles_minified_bundles_and_embedded_assets_do_not_trip() {
    let s = scanner();
    let mut g = Gen::new(8);
    let lock = format!(
        "{{\n  \"packages\": {{\n    \"node_modules/a\": {{\n      \"resolved\": \"https://registry.example/a/-/a-1.0.0.tgz\",\n      \"integrity\": \"sha512-{}==\"\n    }}\n  }}\n}}\n",
        g.chars(B64, 86)
    );
    assert!(
        s.scan_bytes("package-lock.json", lock.as_bytes())
            .is_empty()
    );
    let yarn = format!(
        "a@^1.0.0:\n  version \"1.0.0\"\n  integrity sha1-{}=\n",
        g.chars(B64, 27)
    );
    assert!(s.scan_bytes("yarn.lock", yarn.as_bytes()).is_empty());
    // a minified bundle: secret-named assignments on a 5 kB line are code, not config
    let mut min = String::from("!function(e){");
    for i in 0..60 {
        min.push_str(&format!(
            "var t{i}={{apiKey:\"{}\",token:\"{}\"}};",
            g.chars(ALNUM, 24),
            g.chars(ALNUM, 24)
        ));
    }
    min.push_str("}(this);\n");
    assert!(s.scan_bytes("dist/app.js", min.as_bytes()).is_empty());
    assert!(s.scan_bytes("dist/app.min.js", min.as_bytes()).is_empty());
    // ...but a real token with a distinctive prefix inside one is still found
    let token = format!("ghp_{}", g.chars(ALNUM, 36));
    let with_token = min.replace("}(this);", &format!("e.auth=\"{token}\"}}(this);"));
    assert_eq!(
        rules_of(&s.scan_bytes("dist/app.min.js", with_token.as_bytes())),
        ["github-pat"]
    );
    // base64 assets: WASM and images inlined as data: URIs or plain base64 strings
    let key_like = format!("AKIA{}", g.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    let asset = format!(
        "const wasm = \"AGFzbQEAAAAB{}{key_like}{}\";\nconst img = \"data:image/png;base64,{}/{key_like}+{}\";\n",
        g.chars(B64, 3000),
        g.chars(B64, 3000),
        g.chars(B64, 500),
        g.chars(B64, 500)
    );
    assert!(s.scan_bytes("lib/wasm.js", asset.as_bytes()).is_empty());
    // source maps: VLQ mappings
    let map = format!(
        "{{\"version\":3,\"sources\":[\"a.ts\"],\"mappings\":\"{};{},{}\"}}",
        g.chars(B64, 200),
        key_like,
        g.chars(B64, 200)
    );
    assert!(s.scan_bytes("dist/a.js.map", map.as_bytes()).is_empty());
}

#[test]
fn crypto_test_fixtures_are_allowlisted_but_live_tokens_are_not() {
    let s = scanner();
    let mut g = Gen::new(9);
    let pem = g.pem("EC PRIVATE KEY", 160);
    for path in [
        "package/test/fixtures/ec.pem",
        "package/test/keys.js",
        "package/__tests__/sign.test.ts",
        "package/spec/support/key.pem",
        "package/examples/server.key",
    ] {
        assert!(s.scan_bytes(path, pem.as_bytes()).is_empty(), "{path}");
    }
    assert_eq!(
        rules_of(&s.scan_bytes("package/lib/keys.js", pem.as_bytes())),
        ["private-key"]
    );
    // a fixture directory does not hide a live-service token
    let token = format!(
        "xoxb-{}-{}-{}",
        g.chars(b"0123456789", 12),
        g.chars(b"0123456789", 13),
        g.chars(ALNUM, 24)
    );
    let text = format!("module.exports = {{ slack: '{token}' }};\n");
    assert_eq!(
        rules_of(&s.scan_bytes("package/test/fixtures/conf.js", text.as_bytes())),
        ["slack-token"]
    );
}

#[test]
fn binary_files_get_only_path_rules() {
    let s = scanner();
    let mut g = Gen::new(10);
    let mut bin = vec![0u8; 16];
    bin.extend(format!("ghp_{}", g.chars(ALNUM, 36)).bytes());
    assert!(s.scan_bytes("assets/logo.png", &bin).is_empty());
}

#[test]
fn findings_point_at_line_and_column_and_keep_the_secret_out() {
    let s = scanner();
    let mut g = Gen::new(11);
    let token = format!("npm_{}", g.chars(ALNUM, 36));
    let text = format!("a\nb\n    key: \"{token}\"\n");
    let found = s.scan_bytes("ci/config.yml", text.as_bytes());
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!((f.line, f.column), (3, Some(11)));
    assert_eq!(f.redacted, "npm_…(40 chars)");
    assert_eq!(f.reason(), "npm-token at ci/config.yml:3");
    assert!(!f.to_string().contains(&token[4..]));
}

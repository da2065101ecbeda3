//! Sensitive paths: files that are secrets by what they are (`.env`, private-key files,
//! SSH identities, stored git or netrc credentials), reported as whole-file findings.

use crate::allow;

/// Rule id: a dotenv file with at least one assignment (not `.env.example` & co.).
pub const DOTENV_FILE: &str = "dotenv-file";
/// Rule id: a private-key file (`*.pem`/`*.key` holding a private key, PKCS#12, keystores).
pub const PRIVATE_KEY_FILE: &str = "private-key-file";
/// Rule id: an SSH identity (`id_rsa`, `id_ed25519`, … but not `.pub`).
pub const SSH_IDENTITY_FILE: &str = "ssh-identity-file";
/// Rule id: stored credentials (`.git-credentials`, `.netrc`, `.pgpass`).
pub const CREDENTIALS_FILE: &str = "credentials-file";

/// Every path rule id with its description, for `--help`-style listings and docs.
pub const PATH_RULES: &[(&str, &str)] = &[
    (
        DOTENV_FILE,
        ".env, .env.*, *.env, .envrc with an assignment (not .env.example, .sample, .template, .dist, .defaults, .schema)",
    ),
    (
        PRIVATE_KEY_FILE,
        "*.pem / *.key / *.p8 holding a private key; *.p12, *.pfx, *.jks, *.keystore, *.ppk",
    ),
    (
        SSH_IDENTITY_FILE,
        "id_rsa*, id_dsa*, id_ecdsa*, id_ed25519* holding a private key (not .pub)",
    ),
    (
        CREDENTIALS_FILE,
        ".git-credentials with a URL password, .netrc/_netrc with a password, .pgpass",
    ),
];

/// Suffixes of `.env.<suffix>` files that are templates meant to be committed.
const ENV_TEMPLATES: &[&str] = &[
    "example", "sample", "template", "dist", "defaults", "schema",
];

/// The last component of a path (inside an archive, of the entry's path).
pub fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\', '!']).next().unwrap_or(path)
}

/// Whether `basename` is a dotenv file with real values: `.env`, `.env.local`, `prod.env`,
/// `.envrc`; not a committed template such as `.env.example`.
pub fn is_dotenv(basename: &str) -> bool {
    let lower = basename.to_ascii_lowercase();
    if lower == ".env" || lower == ".envrc" {
        return true;
    }
    if let Some(suffix) = lower.strip_prefix(".env.") {
        return !suffix.split('.').any(|part| ENV_TEMPLATES.contains(&part));
    }
    lower.ends_with(".env") && lower.len() > 4 && !lower.starts_with('.')
}

/// Whether `basename` is an npm or yarn rc file (where `_authToken` lines live).
pub fn is_npmrc(basename: &str) -> bool {
    matches!(basename, ".npmrc" | "npmrc" | ".yarnrc" | ".yarnrc.yml")
}

/// The path rule `path` with contents `bytes` trips, if any. `binary` says whether the
/// contents are binary (a NUL in the first block).
pub fn check(path: &str, bytes: &[u8], binary: bool) -> Option<&'static str> {
    if allow::is_fixture_path(path) || bytes.is_empty() {
        return None;
    }
    let name = basename(path);
    let lower = name.to_ascii_lowercase();
    let contains = |needle: &[u8]| memchr::memmem::find(bytes, needle).is_some();
    if is_dotenv(name) && !binary && has_assignment(bytes) {
        return Some(DOTENV_FILE);
    }
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "pem" | "key" | "p8" => {
            let der = binary && bytes.first() == Some(&0x30);
            if contains(b"PRIVATE KEY-----") || der {
                return Some(PRIVATE_KEY_FILE);
            }
        }
        "p12" | "pfx" | "jks" | "keystore" | "ppk" => return Some(PRIVATE_KEY_FILE),
        _ => {}
    }
    let identity = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"]
        .iter()
        .any(|p| lower.starts_with(p));
    if identity && !lower.ends_with(".pub") && contains(b"PRIVATE KEY") {
        return Some(SSH_IDENTITY_FILE);
    }
    let creds = match lower.as_str() {
        ".git-credentials" => contains(b"@") && contains(b"://"),
        ".netrc" | "_netrc" => contains(b"password"),
        ".pgpass" => true,
        _ => false,
    };
    creds.then_some(CREDENTIALS_FILE)
}

/// Whether a dotenv file assigns anything (`NAME=value` with a non-empty value).
fn has_assignment(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii();
        let line = line.strip_prefix(b"export ").unwrap_or(line);
        if line
            .first()
            .is_none_or(|b| !(b.is_ascii_alphabetic() || *b == b'_'))
        {
            return false;
        }
        match memchr::memchr(b'=', line) {
            Some(eq) => {
                let value = line[eq + 1..].trim_ascii();
                !value.is_empty() && value != b"\"\"" && value != b"''"
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_names() {
        for n in [
            ".env",
            ".env.local",
            ".env.production",
            "prod.env",
            ".envrc",
        ] {
            assert!(is_dotenv(n), "{n}");
        }
        for n in [
            ".env.example",
            ".env.sample",
            ".env.template",
            ".env.local.example",
            "dotenv.js",
            "env",
            ".environment",
        ] {
            assert!(!is_dotenv(n), "{n}");
        }
    }

    #[test]
    fn dotenv_needs_an_assignment_and_no_fixture_dir() {
        assert_eq!(check("app/.env", b"PORT=3000\n", false), Some(DOTENV_FILE));
        assert_eq!(check("app/.env", b"# PORT=\nPORT=\n", false), None);
        assert_eq!(check("pkg/test/.env", b"PORT=3000\n", false), None);
        assert_eq!(check("app/.env.example", b"PORT=3000\n", false), None);
    }

    #[test]
    fn key_files() {
        let pem = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            check("certs/server.key", pem, false),
            Some(PRIVATE_KEY_FILE)
        );
        assert_eq!(
            check("certs/server.pem", pem, false),
            Some(PRIVATE_KEY_FILE)
        );
        let cert = b"-----BEGIN CERTIFICATE-----\nMIIE\n-----END CERTIFICATE-----\n";
        assert_eq!(check("certs/ca.pem", cert, false), None);
        assert_eq!(
            check("certs/client.p12", b"\x30\x82\x01", true),
            Some(PRIVATE_KEY_FILE)
        );
        assert_eq!(check("slides/talk.key", b"PK\x03\x04\0\0", true), None);
        assert_eq!(check("pkg/test/fixtures/server.key", pem, false), None);
    }

    #[test]
    fn ssh_identities_but_not_public_keys() {
        let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n";
        assert_eq!(
            check("home/.ssh/id_rsa", key, false),
            Some(SSH_IDENTITY_FILE)
        );
        assert_eq!(
            check("home/.ssh/id_ed25519", key, false),
            Some(SSH_IDENTITY_FILE)
        );
        assert_eq!(check("home/.ssh/id_rsa.pub", b"ssh-rsa AAAA", false), None);
        assert_eq!(
            check("lib/id_rsa_utils.js", b"module.exports = 'ssh-rsa'", false),
            None
        );
        assert_eq!(check("home/.ssh/id_rsa-cert.pub", key, false), None);
    }

    #[test]
    fn stored_credentials() {
        assert_eq!(
            check(".git-credentials", b"https://u:p4ss@git.example\n", false),
            Some(CREDENTIALS_FILE)
        );
        assert_eq!(
            check(".netrc", b"machine x login u password p\n", false),
            Some(CREDENTIALS_FILE)
        );
        assert_eq!(check(".netrc", b"machine x login u\n", false), None);
    }
}

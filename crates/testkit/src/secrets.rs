//! Credential-shaped strings made at run time, so the repository itself holds no
//! secret-looking literal for a scanner or a push protection to flag.

use rand::Rng;

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// An access key id in AWS's format (`AKIA` and 16 base-32 characters), new on every call.
pub fn aws_key_id() -> String {
    format!("AKIA{}", random_from(BASE32, 16))
}

/// A secret access key in AWS's format (40 base-64 characters), new on every call.
pub fn aws_secret_key() -> String {
    random_from(BASE64, 40)
}

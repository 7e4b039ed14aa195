//! The development EHR's signing key: an ES256 (P-256) key generated once and kept
//! beside the index (PKCS#8 PEM, mode 0600), published as a JWKS.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A signing key with its public JWK.
pub struct SigningKey {
    /// For `jsonwebtoken::encode`.
    pub encoding: EncodingKey,
    /// The RFC 7638 thumbprint, used as `kid`.
    pub kid: String,
    /// The public key as a JWK (`kty`, `crv`, `x`, `y`, `use`, `alg`, `kid`).
    pub jwk: Value,
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| format!("random bytes: {e}"))?;
    Ok(b)
}

/// A random URL-safe string of `N` random bytes (codes, refresh tokens, secrets).
pub fn random_token<const N: usize>() -> Result<String, String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// Loads the key at `path`, or creates it there.
pub fn load_or_create(path: &Path) -> Result<SigningKey, String> {
    let shown = path.display();
    let secret = if path.exists() {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        p256::SecretKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("{shown}: not a P-256 PKCS#8 key: {e}"))?
    } else {
        let secret = loop {
            // A random 32-byte string is a valid scalar except with probability ~2^-32.
            if let Ok(k) = p256::SecretKey::from_slice(&random_bytes::<32>()?) {
                break k;
            }
        };
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("encoding the key: {e}"))?;
        write_private(path, pem.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
        secret
    };
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the key: {e}"))?;
    let encoding =
        EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| format!("signing key: {e}"))?;
    let point = secret.public_key().to_sec1_bytes();
    if point.len() != 65 || point[0] != 4 {
        return Err("unexpected P-256 public key encoding".into());
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
    // RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": kid});
    Ok(SigningKey { encoding, kid, jwk })
}

/// Writes a secret file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads the secret at `path`, or creates one there.
pub fn load_or_create_secret(path: &Path) -> Result<String, String> {
    if path.exists() {
        let s = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(s.trim().to_string());
    }
    let s = random_token::<24>()?;
    write_private(path, s.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(s)
}

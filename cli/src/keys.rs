//! `nestbox keygen`, `nestbox sign`, `nestbox verify`: module signatures for build pipelines.
//!
//! A key file is JSON `{"keyId": …, "secretKey": <base64>, "publicKey": <base64>}`; keep it
//! out of the repository. The policy only ever needs the key id and the public key.

use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nestbox::policy::{ModuleSignature, Provenance, TrustPolicy, TrustedKey, public_key_of};
use nestbox::{Digest, Error};
use serde::{Deserialize, Serialize};

use crate::args::Args;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyFile {
    key_id: String,
    secret_key: String,
    public_key: String,
}

pub const USAGE: &str =
    "  keygen --id ID --out KEYFILE          make an Ed25519 key pair; prints the public key
  sign --key KEYFILE MODULE.wasm        print MODULE's detached signature (<key id>:<base64>)
  verify --pubkey ID=PUBLIC_KEY [--integrity SRI] MODULE.wasm SIGNATURE
                                        check a signature (and digest) as the browser would";

pub fn keygen(mut args: Args) -> Result<ExitCode, Error> {
    let id = args.required("--id")?;
    let out = args.required("--out")?;
    args.finish()?;
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret)
        .map_err(|e| Error::invalid_argument(format!("no OS randomness: {e}")))?;
    // Validates the id before anything is written.
    ModuleSignature::sign(&id, &secret, &Digest::of(b""))?;
    let file = KeyFile {
        key_id: id.clone(),
        secret_key: STANDARD.encode(secret),
        public_key: public_key_of(&secret),
    };
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| Error::invalid_argument(format!("key file: {e}")))?;
    write_new(&out, json.as_bytes())?;
    println!("{id}={}", file.public_key);
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` only if it does not exist (never overwrites a key), owner-readable only.
fn write_new(path: &str, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| Error::invalid_argument(format!("cannot create {path}: {e}")))?;
    f.write_all(bytes)
        .map_err(|e| Error::invalid_argument(format!("cannot write {path}: {e}")))
}

pub fn sign(mut args: Args) -> Result<ExitCode, Error> {
    let key_path = args.required("--key")?;
    let module = args.positional("MODULE.wasm")?;
    args.finish()?;
    let text = crate::args::read_text(&key_path)?;
    let key: KeyFile = serde_json::from_str(&text)
        .map_err(|e| Error::invalid_argument(format!("{key_path}: not a nestbox key file: {e}")))?;
    let secret: [u8; 32] = STANDARD
        .decode(&key.secret_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            Error::invalid_argument(format!("{key_path}: secretKey must be 32 bytes of base64"))
        })?;
    let bytes = crate::args::read_bytes(&module)?;
    let signature = ModuleSignature::sign(&key.key_id, &secret, &Digest::of(&bytes))?;
    println!("{}", signature.to_text());
    Ok(ExitCode::SUCCESS)
}

pub fn verify(mut args: Args) -> Result<ExitCode, Error> {
    let mut keys = Vec::new();
    for spec in args.all("--pubkey")? {
        let (id, key) = spec
            .split_once('=')
            .ok_or_else(|| Error::invalid_argument("--pubkey takes ID=PUBLIC_KEY"))?;
        keys.push(TrustedKey::parse(id, key)?);
    }
    let integrity = args.optional("--integrity")?;
    let module = args.positional("MODULE.wasm")?;
    let signature = args.positional("SIGNATURE")?;
    args.finish()?;
    if keys.is_empty() {
        return Err(Error::invalid_argument(
            "give at least one --pubkey ID=PUBLIC_KEY",
        ));
    }
    let bytes = crate::args::read_bytes(&module)?;
    let digest = match integrity {
        Some(text) => nestbox::integrity::verify(&bytes, &Digest::parse(&text)?, u64::MAX)?,
        None => Digest::of(&bytes),
    };
    let policy = TrustPolicy {
        keys,
        require_signature: true,
        ..TrustPolicy::default()
    };
    let verdict = policy.evaluate(
        &digest,
        &Provenance {
            origin: None,
            signature: Some(signature),
        },
    );
    match verdict {
        Ok(allowed) => {
            println!(
                "ok: {digest} signed by {}",
                allowed.key_id.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {} {}", e.code(), e.message());
            Ok(ExitCode::from(1))
        }
    }
}

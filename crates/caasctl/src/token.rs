//! `caasctl token`: an operator JWT (HS256) for the local stack, as the gateway verifies it.
//!
//! ```text
//! cargo run -p caasctl -- token --tenant demo --sub op-1 --role admin
//! cargo run -p caasctl -- token --tenant demo --sub op-1 --url http://127.0.0.1:3000
//! ```
//!
//! The secret is `CAAS_JWT_SECRET`; when it is not set, the value in `.env` or `.env.example`
//! of the current directory (or a parent) is used, which is what `make up` gives the gateway.
//! The token goes to stdout alone, so `TOKEN=$(caasctl token ...)` works.

use std::path::{Path, PathBuf};

use caas_runtime::jwt;
use clap::{Args, ValueEnum};

/// The operator's role.
#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    /// Answers conversations.
    Operator,
    /// Also assigns others, exports and erases.
    Admin,
}

#[derive(Args)]
pub struct TokenArgs {
    /// The tenant the operator belongs to.
    #[arg(long)]
    tenant: String,
    /// The operator id (the `sub` claim).
    #[arg(long)]
    sub: String,
    /// The operator's role.
    #[arg(long, value_enum, default_value = "operator")]
    role: Role,
    /// How long the token is valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "12h")]
    ttl: String,
    /// The HS256 secret (default: CAAS_JWT_SECRET, else from .env / .env.example).
    #[arg(long, env = "CAAS_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Print the dashboard URL that signs in with the token, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    url: Option<String>,
}

pub fn run(arguments: TokenArgs) -> anyhow::Result<()> {
    if arguments.tenant.is_empty() || arguments.tenant.contains(':') {
        anyhow::bail!("--tenant must be non-empty and contain no ':'");
    }
    if arguments.sub.trim().is_empty() {
        anyhow::bail!("--sub must be non-empty");
    }
    let ttl_seconds = parse_ttl(&arguments.ttl)?;
    let secret = match arguments.secret.filter(|secret| !secret.is_empty()) {
        Some(secret) => secret,
        None => secret_from_env_files(&std::env::current_dir()?).ok_or_else(|| {
            anyhow::anyhow!(
                "no secret: set CAAS_JWT_SECRET or pass --secret (no .env or .env.example found)"
            )
        })?,
    };
    let now = jwt::now_seconds();
    let role = match arguments.role {
        Role::Operator => "operator",
        Role::Admin => "admin",
    };
    let claims = serde_json::json!({
        "sub": arguments.sub,
        "tenant": arguments.tenant,
        "role": role,
        "iat": now,
        "exp": now + ttl_seconds,
    });
    let token = jwt::sign(&claims, secret.as_bytes());
    match arguments.url {
        Some(base) => println!("{}/?token={token}", base.trim_end_matches('/')),
        None => println!("{token}"),
    }
    Ok(())
}

fn parse_ttl(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((index, unit)) if unit.is_ascii_alphabetic() => (&text[..index], unit),
        _ => (text, 's'),
    };
    let number: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--ttl {text:?}: expected e.g. 3600, 90m, 12h or 7d"))?;
    let seconds = match unit {
        's' => number,
        'm' => number * 60,
        'h' => number * 3_600,
        'd' => number * 86_400,
        other => anyhow::bail!("--ttl unit {other:?} is not s, m, h or d"),
    };
    if seconds <= 0 {
        anyhow::bail!("--ttl must be positive");
    }
    Ok(seconds)
}

/// `CAAS_JWT_SECRET` from `.env`, else `.env.example`, in `start` or its nearest parent that
/// has either.
fn secret_from_env_files(start: &Path) -> Option<String> {
    let mut directory: Option<PathBuf> = Some(start.to_path_buf());
    while let Some(current) = directory {
        for name in [".env", ".env.example"] {
            if let Ok(text) = std::fs::read_to_string(current.join(name)) {
                let value = text.lines().find_map(|line| {
                    line.trim()
                        .strip_prefix("CAAS_JWT_SECRET=")
                        .map(|value| value.trim().trim_matches('"').to_string())
                });
                if let Some(value) = value.filter(|value| !value.is_empty()) {
                    eprintln!(
                        "caasctl: using CAAS_JWT_SECRET from {}",
                        current.join(name).display()
                    );
                    return Some(value);
                }
            }
        }
        directory = current.parent().map(Path::to_path_buf);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("90m").unwrap(), 5_400);
        assert_eq!(parse_ttl("12h").unwrap(), 43_200);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("0").is_err());
    }
}

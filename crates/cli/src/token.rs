//! `tiercache token issue|inspect`: signed tokens (JWT, HS256) with the server's secret,
//! read from `TIERCACHE_AUTH_SECRET` or the config file's `[auth] secret` (never a flag:
//! it would show in `ps`). `issue` prints the token and nothing else on stdout; `inspect`
//! prints its claims as JSON, or exits 1 if it is not valid.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use tiercache_core::Role;
use tiercache_server::auth::{Claims, TokenKeys};

use crate::config::token_secret;

/// `tiercache token <action>`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

/// What `tiercache token` does.
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Print a signed token for a user (on stdout, nothing else).
    Issue(IssueArgs),
    /// Verify a token with the secret and print its claims as JSON (exit 1 if invalid).
    Inspect(InspectArgs),
}

/// A token's role.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// A sandbox user: its own scope, read access to its templates and global.
    User,
    /// Fills shared caches: writes its --template scopes, or global if it has none.
    Warmer,
    /// Everything, including admin endpoints.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Warmer => Role::Warmer,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Flags of `tiercache token issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The user id (owner of user/<id>): 1-64 of A-Z a-z 0-9 . _ -
    #[arg(long)]
    pub user: String,
    /// A template the user may read (a warmer also writes it); repeat or comma-separate.
    #[arg(long = "template", value_name = "TEMPLATE", value_delimiter = ',')]
    pub templates: Vec<String>,
    /// What else the token may do.
    #[arg(long, value_enum, default_value_t = RoleArg::User)]
    pub role: RoleArg,
    /// The token never writes.
    #[arg(long)]
    pub read_only: bool,
    /// How long the token is valid, e.g. 12h, 30d.
    #[arg(long, default_value = "30d")]
    pub ttl: String,
    /// A Turborepo team the token may use [default: the team named like --user];
    /// repeat or comma-separate.
    #[arg(long = "team", value_name = "TEAM", value_delimiter = ',')]
    pub teams: Vec<String>,
    /// TOML config file whose [auth] secret signs (TIERCACHE_AUTH_SECRET wins over it).
    #[arg(long, env = "TIERCACHE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `tiercache token inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The token; `-` reads it from standard input.
    pub token: String,
    /// TOML config file whose [auth] secret verifies (TIERCACHE_AUTH_SECRET wins over it).
    #[arg(long, env = "TIERCACHE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs `tiercache token ...`.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        TokenAction::Issue(a) => issue(a),
        TokenAction::Inspect(a) => inspect(a),
    }
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Warmer => "warmer",
        Role::Admin => "admin",
    }
}

fn issue(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let ttl = humantime::parse_duration(args.ttl.trim())
        .with_context(|| format!("--ttl {:?} is not a duration (e.g. 12h, 30d)", args.ttl))?;
    if ttl.as_secs() == 0 {
        bail!("--ttl must be at least one second");
    }
    let secret = token_secret(args.config.as_deref())?;
    let keys = TokenKeys::new(&secret, Duration::ZERO);
    let mut claims = Claims::new(args.user, args.role.into(), ttl);
    claims.templates = args.templates;
    claims.teams = args.teams;
    claims.ro = args.read_only;
    let token = keys.issue(&claims)?;
    let writes = if claims.ro {
        "read-only".to_string()
    } else {
        match claims.role {
            Role::Admin => "writes every scope".into(),
            Role::Warmer if claims.templates.is_empty() => {
                format!("writes user/{} and global", claims.sub)
            }
            Role::Warmer => format!(
                "writes user/{} and template/{}",
                claims.sub,
                claims.templates.join(", template/")
            ),
            Role::User => format!("writes user/{}", claims.sub),
        }
    };
    eprintln!(
        "token for {} ({}, {writes}; templates: [{}]; turbo teams: [{}]), expires {}",
        claims.sub,
        role_name(claims.role),
        claims.templates.join(", "),
        if claims.role == Role::Admin {
            "any".to_string()
        } else {
            claims.allowed_teams().join(", ")
        },
        rfc3339(claims.exp)
    );
    crate::stdout::print(&format!("{token}\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let token = if args.token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the token from standard input")?;
        s
    } else {
        args.token
    };
    let secret = token_secret(args.config.as_deref())?;
    let keys = TokenKeys::new(&secret, Duration::ZERO);
    let claims = keys
        .verify(token.trim())
        .map_err(|e| anyhow::anyhow!("invalid token: {e}"))?;
    eprintln!(
        "valid: issued {}, expires {}",
        rfc3339(claims.iat),
        rfc3339(claims.exp)
    );
    crate::stdout::print(&format!("{}\n", serde_json::to_string_pretty(&claims)?))?;
    Ok(ExitCode::SUCCESS)
}

//! `caasctl`: the command-line tool ops and CI use against a CAAS deployment.
//!
//! - `caasctl probe <part>`: ask Kafka, the registry, MongoDB or Redis a real question; exit 0
//!   when it answers (the local stack's readiness checks use this).
//! - `caasctl topics ...` / `caasctl schemas ...`: apply and document the topic catalogue and
//!   the Avro contracts.
//! - `caasctl token --tenant <t> --sub <operator> [--role admin]`: an operator JWT for the
//!   gateway (socket.io `auth.token`, REST Bearer).

mod lag;
mod probe;
mod token;

use caasctl::{dlq, schemas, topics};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "caasctl", version, about = "Operate a CAAS deployment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that one part of the stack answers a real request.
    Probe(probe::ProbeArgs),
    /// Apply the topic catalogue to Kafka, or generate its documentation.
    Topics(topics::TopicsArgs),
    /// Register the value schemas, or check that changes to them stay compatible.
    Schemas(schemas::SchemasArgs),
    /// Consumer lag per group and partition, members, and how many instances a group can use.
    Lag(lag::LagArgs),
    /// Print an operator JWT (HS256, CAAS_JWT_SECRET) for the gateway and dashboard.
    Token(token::TokenArgs),
    /// List a dead-letter topic, or replay it to the original topics exactly once.
    Dlq(dlq::DlqArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe(arguments) => probe::run(arguments).await,
        Command::Topics(arguments) => topics::run(arguments).await,
        Command::Schemas(arguments) => schemas::run(arguments).await,
        Command::Lag(arguments) => lag::run(arguments).await,
        Command::Token(arguments) => token::run(arguments),
        Command::Dlq(arguments) => dlq::run(arguments).await,
    }
}

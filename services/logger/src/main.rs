//! The `caas-logger` binary: the worker (default), or a data-rights command.
//!
//! ```text
//! caas-logger                                    run the worker until SIGINT/SIGTERM
//! caas-logger export --tenant T --customer C     everything about C, JSON lines on stdout
//! caas-logger erase  --tenant T --customer C     delete it, print what was deleted
//! ```

use clap::{Parser, Subcommand};

use caas_logger::rights::{self, Customer};
use caas_runtime::{probe, shutdown_token, telemetry, Env};

#[derive(Parser)]
#[command(
    name = "caas-logger",
    version,
    about = "CAAS logger: persists every event to MongoDB"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Serve,
    /// Write everything stored about one customer as JSON lines to stdout.
    Export {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The customer's id on the channel (phone number).
        #[arg(long)]
        customer: String,
    },
    /// Erase everything stored about one customer; prints the counts as JSON.
    Erase {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The customer's id on the channel (phone number).
        #[arg(long)]
        customer: String,
        /// Who asked, for the erasure record.
        #[arg(long, default_value = "ops")]
        requested_by: String,
    },
}

/// Logs of the commands go to stderr: stdout carries the export.
fn command_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = caas_logger::Config::from_env(&Env::from_process())?;
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Serve = command {
        telemetry::init(caas_logger::SERVICE, &config.common);
        return caas_logger::run(config, shutdown_token(), |_| {}).await;
    }
    command_logs();
    let store = caas_logger::Store::connect(
        &config.common.mongodb_uri,
        &config.common.mongodb_database,
        std::time::Duration::from_secs(10),
    )
    .await?;
    let mut redis = probe::redis_connection(config.common.redis_url.expose())
        .await
        .map_err(anyhow::Error::msg)?;
    match command {
        Command::Serve => unreachable!("handled above"),
        Command::Export { tenant, customer } => {
            let customer = Customer::new(&tenant, &customer)?;
            let export = rights::export_customer(store.database(), &mut redis, &customer).await?;
            let mut stdout = tokio::io::BufWriter::new(tokio::io::stdout());
            let lines = rights::write_json_lines(export, &mut stdout).await?;
            tracing::info!(lines, "export written");
        }
        Command::Erase {
            tenant,
            customer,
            requested_by,
        } => {
            let customer = Customer::new(&tenant, &customer)?;
            let report =
                rights::erase_customer(store.database(), &mut redis, &customer, &requested_by)
                    .await?;
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

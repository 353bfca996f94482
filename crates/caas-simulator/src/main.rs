//! The `caas-simulator` binary: `caas-simulator` (or `serve`) runs the fake provider APIs;
//! `caas-simulator customers ...` plays customers once and prints the report as JSON.

use std::sync::Arc;

use caas_runtime::{shutdown_token, telemetry, Env};
use caas_simulator::customers::{self, Channel, CustomerRun};
use caas_simulator::webhooks::CustomerContent;
use clap::{Parser, Subcommand};

/// Fake WhatsApp Cloud API and RBM API. Configured by `CAAS_SIMULATOR_*` variables (see the
/// README); webhooks are signed with `CAAS_WHATSAPP_APP_SECRET` and `CAAS_RBM_CLIENT_TOKEN`.
#[derive(Debug, Parser)]
#[command(name = "caas-simulator", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the provider APIs (the default).
    Serve,
    /// Send signed customer messages to the configured webhook URLs, then exit.
    Customers {
        /// `whatsapp` or `rcs`.
        #[arg(long, default_value = "whatsapp")]
        channel: String,
        /// The business endpoint written to (phone_number_id / agentId); the demo's by default.
        #[arg(long)]
        business_id: Option<String>,
        /// Customer numbers (repeat the flag); made up when absent.
        #[arg(long = "customer")]
        customers: Vec<String>,
        /// How many customers to make up when none are given.
        #[arg(long, default_value_t = 1)]
        customer_count: u32,
        /// Text messages to send, cycled (repeat the flag).
        #[arg(long = "text")]
        texts: Vec<String>,
        /// A button reply `id=title` to send, cycled with the texts (repeat the flag).
        #[arg(long = "button")]
        buttons: Vec<String>,
        /// How many messages in all (default: one per text/button).
        #[arg(long)]
        count: Option<u32>,
        /// Messages per second (default: as fast as the receiver takes them).
        #[arg(long)]
        rate: Option<f64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = caas_simulator::Config::from_env(&Env::from_process())?;
    telemetry::init(caas_simulator::SERVICE, &config.common);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => caas_simulator::run(config, shutdown_token(), |_| {}).await,
        Command::Customers {
            channel,
            business_id,
            customers,
            customer_count,
            texts,
            buttons,
            count,
            rate,
        } => {
            let channel = match channel.as_str() {
                "whatsapp" => Channel::Whatsapp,
                "rcs" => Channel::Rcs,
                other => anyhow::bail!("--channel must be whatsapp or rcs, got {other:?}"),
            };
            let mut messages: Vec<CustomerContent> =
                texts.into_iter().map(CustomerContent::Text).collect();
            for button in buttons {
                let (id, title) = button
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--button must be id=title, got {button:?}"))?;
                messages.push(CustomerContent::Button {
                    id: id.to_string(),
                    title: title.to_string(),
                });
            }
            if messages.is_empty() {
                messages.push(CustomerContent::Text("hi".to_string()));
            }
            let run = CustomerRun {
                channel,
                business_id,
                customers,
                customer_count,
                customer_name: None,
                messages,
                count,
                rate_per_second: rate,
            };
            run.validate().map_err(|reason| anyhow::anyhow!(reason))?;
            let log = Arc::new(caas_simulator::records::Log::new(1));
            let dispatcher = caas_simulator::dispatcher(&config, log, shutdown_token());
            let report = customers::play(&run, &dispatcher).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.failed > 0 {
                anyhow::bail!(
                    "{} of {} messages were not accepted",
                    report.failed,
                    report.failed + report.sent
                );
            }
            Ok(())
        }
    }
}

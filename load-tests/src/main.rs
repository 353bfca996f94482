//! `caas-load`: the load generator of CAAS's load tests (`make bench`, `load-tests/README.md`).
//!
//! Every subcommand runs for a bounded time (warm-up, then a measured window), prints one JSON
//! object on stdout and exits; `load-tests/bench.py` runs the scenarios and writes the report.

mod bot;
mod fleet;
mod seed;
mod stats;
mod webhook;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::fleet::{Fleet, FleetConfig};
use crate::stats::{now_micros, process_cpu_seconds};
use crate::webhook::{Load, Target};

#[derive(Parser)]
#[command(about = "CAAS load generator: signed webhooks, socket.io fleets, a bare HTTP ceiling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send signed WhatsApp webhooks (open loop with --rate, else closed loop with --workers).
    Send(SendArgs),
    /// Connect a socket.io fleet, then send webhooks into its rooms and time each message from
    /// its send stamp to its arrival at every socket (end to end, fan-out).
    Deliver {
        #[command(flatten)]
        send: SendArgs,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Seconds to keep listening after the last send.
        #[arg(long, default_value_t = 5.0)]
        drain: f64,
    },
    /// Hold idle sockets and report the servers' resident memory per socket.
    Idle {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Server process ids whose VmRSS is read before and after connecting.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
        /// Seconds to hold the sockets before reading memory.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
    },
    /// A bare axum server answering 200 OK to every request: the HTTP ceiling.
    ServeOk {
        #[arg(long, default_value = "127.0.0.1:8089")]
        addr: String,
    },
    /// Inbound message to the bot's reply at the provider simulator.
    Bot(bot::BotArgs),
    /// Produce a backlog of inbound messages straight to Kafka (the drain scenario).
    Seed(seed::SeedArgs),
}

#[derive(Args, Clone)]
struct SendArgs {
    #[command(flatten)]
    endpoint: webhook::Endpoint,
    /// Customers (conversations) the messages are spread over.
    #[arg(long, default_value_t = 1000)]
    customers: u64,
    #[arg(long, default_value_t = 4_990_000_000_000)]
    customer_base: u64,
    /// Open loop: messages per second. 0: closed loop.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Closed loop: concurrent senders.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Open loop: at most this many requests outstanding (further arrivals are dropped and
    /// counted).
    #[arg(long, default_value_t = 2048)]
    max_in_flight: u64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Args, Clone)]
struct FleetArgs {
    /// `host:port` of the socket.io servers, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:3000,127.0.0.1:3001"
    )]
    servers: Vec<String>,
    #[arg(
        long,
        env = "CAAS_JWT_SECRET",
        default_value = "local-jwt-secret-change-me"
    )]
    jwt_secret: String,
    #[arg(long, default_value = "demo")]
    tenant: String,
    #[arg(long, default_value_t = 100)]
    sockets: usize,
    /// Conversations joined: socket i joins conversation i % rooms (0: none, idle sockets).
    #[arg(long, default_value_t = 0)]
    rooms: u64,
    /// Take each joined conversation over from the bot first.
    #[arg(long)]
    handoff: bool,
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
}

impl SendArgs {
    fn target(&self) -> Target {
        Target {
            endpoint: self.endpoint.clone(),
            customer_base: self.customer_base,
            customers: self.customers,
            run_id: format!("{:x}", now_micros()),
        }
    }

    fn load(&self) -> Load {
        if self.rate > 0.0 {
            Load::Open { rate: self.rate }
        } else {
            Load::Closed {
                workers: self.workers,
            }
        }
    }

    async fn run(&self) -> webhook::SendReport {
        webhook::run(
            self.target(),
            self.load(),
            Duration::from_secs_f64(self.warmup),
            Duration::from_secs_f64(self.duration),
            self.max_in_flight,
        )
        .await
    }
}

impl FleetArgs {
    fn config(&self, customer_base: u64) -> FleetConfig {
        FleetConfig {
            servers: self.servers.clone(),
            jwt_secret: self.jwt_secret.clone(),
            tenant: self.tenant.clone(),
            sockets: self.sockets,
            rooms: (0..self.rooms)
                .map(|index| format!("{}:whatsapp:{}", self.tenant, customer_base + index))
                .collect(),
            handoff: self.handoff,
            connect_concurrency: self.connect_concurrency,
        }
    }
}

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn deliver(send: SendArgs, fleet_args: FleetArgs, drain: f64) -> Value {
    let fleet = Fleet::connect(fleet_args.config(send.customer_base)).await;
    let fleet_json = fleet.to_json();
    if fleet.connected == 0 {
        return json!({ "fleet": fleet_json, "error": "no socket connected" });
    }
    // Let the handoffs reach the chatbot, and their updates reach every socket, before the
    // first message.
    let mut settled = json!(null);
    if fleet_args.handoff {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (waited, events) = fleet
            .settle(Duration::from_secs(1), Duration::from_secs(180))
            .await;
        settled = json!({ "seconds": waited.as_secs_f64(), "events_before_measuring": events });
    }
    let start = now_micros() + (send.warmup * 1e6) as u64;
    fleet.measure(start, start + (send.duration * 1e6) as u64);
    let sent = send.run().await;
    tokio::time::sleep(Duration::from_secs_f64(drain)).await;
    let (delivered, received_total) = fleet.finish().await;
    let sockets_per_room = (fleet_args.sockets as u64)
        .checked_div(fleet_args.rooms)
        .unwrap_or(0);
    let acked_in_window = sent.recorder.latencies.len();
    let delivered_count = delivered
        .as_ref()
        .map_or(0, |recorder| recorder.latencies.len());
    let expected = acked_in_window * sockets_per_room;
    json!({
        "fleet": fleet_json,
        "send": sent.to_json(send.load()),
        "delivered": delivered.map(|recorder| recorder.summary()),
        "received_total": received_total,
        "settled_after_handoff": settled,
        "expected_deliveries": expected,
        "delivered_ratio": if expected == 0 { 0.0 } else { delivered_count as f64 / expected as f64 },
        "sockets_per_room": sockets_per_room,
    })
}

async fn idle(fleet_args: FleetArgs, pids: Vec<u32>, settle: f64) -> Value {
    let before: Vec<Option<u64>> = pids.iter().map(|&pid| resident_kib(pid)).collect();
    let fleet = Fleet::connect(fleet_args.config(0)).await;
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after: Vec<Option<u64>> = pids.iter().map(|&pid| resident_kib(pid)).collect();
    let fleet_json = fleet.to_json();
    let connected = fleet.connected as f64;
    let per_server = connected / pids.len().max(1) as f64;
    let servers: Vec<Value> = pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(pid, (before, after))| {
            let grown = after.unwrap_or(0) as f64 - before.unwrap_or(0) as f64;
            json!({
                "pid": pid,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "bytes_per_socket": if per_server > 0.0 { grown * 1024.0 / per_server } else { 0.0 },
            })
        })
        .collect();
    let _ = fleet.finish().await;
    json!({ "fleet": fleet_json, "servers": servers })
}

async fn serve_ok(addr: String) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
        let _ = body;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("serving 200 OK on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = now_micros();
    let mut output = match cli.command {
        Command::ServeOk { addr } => return serve_ok(addr).await,
        Command::Send(send) => {
            let report = send.run().await;
            json!({ "send": report.to_json(send.load()) })
        }
        Command::Deliver { send, fleet, drain } => deliver(send, fleet, drain).await,
        Command::Idle {
            fleet,
            pids,
            settle,
        } => idle(fleet, pids, settle).await,
        Command::Bot(args) => bot::run(args).await?,
        Command::Seed(args) => seed::run(args).await?,
    };
    output["loadgen"] = json!({
        "cpu_seconds": process_cpu_seconds(),
        "wall_seconds": (now_micros() - started) as f64 / 1e6,
        "args": std::env::args().collect::<Vec<_>>(),
    });
    println!("{output}");
    Ok(())
}

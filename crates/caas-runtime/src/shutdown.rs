//! The shutdown signal: a [`CancellationToken`] cancelled on SIGINT or SIGTERM.
//!
//! Services receive the token as a parameter of `run`, so tests stop them by cancelling it;
//! [`Spawned`] does that for anything that embeds a service's `run`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

/// A service's `run(config, shutdown, on_bound)` on a task of its own, once it bound its
/// address: how tests (and anything else embedding a service) start and stop one.
pub struct Spawned<T> {
    /// The address `run` reported through `on_bound`.
    pub address: SocketAddr,
    /// Cancelling it stops the service.
    pub shutdown: CancellationToken,
    /// The task running `run`.
    pub task: tokio::task::JoinHandle<T>,
}

/// What `run` gets as its `on_bound`.
pub type OnBound = Box<dyn FnOnce(SocketAddr) + Send>;

impl<T: Send + 'static> Spawned<T> {
    /// Start `run` (given the shutdown token and `on_bound`) and wait up to `within` for the
    /// address it binds. The error says whether it ended first or never bound.
    pub async fn start<F, Fut>(within: Duration, run: F) -> Result<Self, String>
    where
        F: FnOnce(CancellationToken, OnBound) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let (bound_sender, bound_receiver) = tokio::sync::oneshot::channel();
        let on_bound: OnBound = Box::new(move |address| {
            let _ = bound_sender.send(address);
        });
        let task = tokio::spawn(run(shutdown.clone(), on_bound));
        match tokio::time::timeout(within, bound_receiver).await {
            Ok(Ok(address)) => Ok(Self {
                address,
                shutdown,
                task,
            }),
            Ok(Err(_)) => Err("the service ended before it bound an address".to_string()),
            Err(_) => {
                shutdown.cancel();
                Err(format!(
                    "the service did not bind within {} s",
                    within.as_secs()
                ))
            }
        }
    }

    /// Cancel the shutdown token and wait up to `within` for `run` to return its output.
    pub async fn stop(self, within: Duration) -> Result<T, String> {
        self.shutdown.cancel();
        match tokio::time::timeout(within, self.task).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(format!("the service task failed: {error}")),
            Err(_) => Err(format!(
                "the service did not stop within {} s",
                within.as_secs()
            )),
        }
    }
}

/// Install signal handlers and return a token that is cancelled on the first SIGINT or SIGTERM.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    // The handlers are installed here, before the caller starts serving: a SIGTERM that comes
    // right after "service started" must not meet the default disposition (exit 143).
    let signals = Signals::install();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutdown signal received, finishing in-flight work");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let terminate = signal(SignalKind::terminate())
            .map_err(|error| tracing::error!(%error, "cannot listen for SIGTERM"))
            .ok();
        let interrupt = signal(SignalKind::interrupt())
            .map_err(|error| tracing::error!(%error, "cannot listen for SIGINT"))
            .ok();
        Self {
            terminate,
            interrupt,
        }
    }

    async fn wait(mut self) {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.terminate.as_mut()) => {}
            () = next(self.interrupt.as_mut()) => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self
    }

    async fn wait(self) {
        wait_for_signal().await;
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_run(shutdown: CancellationToken, on_bound: OnBound) -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|error| error.to_string())?;
        on_bound(listener.local_addr().map_err(|error| error.to_string())?);
        shutdown.cancelled().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_spawned_service_reports_its_address_and_stops_on_cancel() {
        let spawned = Spawned::start(Duration::from_secs(5), echo_run)
            .await
            .unwrap();
        assert_ne!(spawned.address.port(), 0);
        tokio::net::TcpStream::connect(spawned.address)
            .await
            .unwrap();
        assert_eq!(spawned.stop(Duration::from_secs(5)).await, Ok(Ok(())));
    }

    #[tokio::test]
    async fn a_service_that_ends_before_binding_is_an_error() {
        let outcome = Spawned::start(Duration::from_secs(5), |_, _| async {}).await;
        let Err(reason) = outcome else {
            panic!("a service that never bound was reported as started");
        };
        assert!(reason.contains("ended before"), "{reason}");
    }
}

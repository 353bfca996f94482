//! `shutdown_token` catches a SIGTERM that arrives the moment it returns. This is its own test
//! binary: the signal goes to the whole process, and without the handler installed in time the
//! default disposition ends the process, so the test fails (exit 143) rather than passing.

use std::time::Duration;

use caas_runtime::shutdown_token;

#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn a_sigterm_right_after_start_cancels_the_token() {
    let token = shutdown_token();
    // On a current-thread runtime the spawned waiter has not run yet: only a handler installed
    // by `shutdown_token` itself can catch this signal.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed: {status}");
    tokio::time::timeout(Duration::from_secs(5), token.cancelled())
        .await
        .expect("the token is cancelled by SIGTERM");
}

//! Process signals: the one place that listens for SIGINT / SIGTERM (used by the server for a
//! clean stop and by `detcdctl lock` / `elect` to release what they hold). Signals are not
//! simulated: under madsim nothing interrupts.

/// Completes on SIGINT or SIGTERM.
#[cfg(not(madsim))]
pub async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Signals are not simulated; nothing interrupts a simulated process.
#[cfg(madsim)]
pub async fn interrupted() {
    std::future::pending::<()>().await
}

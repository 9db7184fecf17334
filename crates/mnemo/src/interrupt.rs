//! Ctrl-C for long work that can stop at a safe point (`mnemo index`): the first one asks it
//! to stop there, the second ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since [`stop_at_safe_points`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// From now on, Ctrl-C sets [`requested`] instead of killing the process; a second Ctrl-C
/// exits with status 130. Without a signal handler (it could not be set) Ctrl-C kills as usual.
pub fn stop_at_safe_points(what: &'static str) {
    let watcher = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                REQUESTED.store(true, Ordering::SeqCst);
                eprintln!(
                    "\nstopping {what} at the next safe point (Ctrl-C again to stop at once) ..."
                );
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            });
        });
    if let Err(err) = watcher {
        eprintln!("warning: Ctrl-C will stop at once: {err}");
    }
}

//! SIGTERM and SIGINT, for [`ServerBuilder::stop_on_signals`](super::ServerBuilder::stop_on_signals):
//! the first starts the graceful shutdown, a second ends its wait.

use std::io;
use std::sync::Arc;
use std::thread;

use log::{error, info, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::{lock, Shared};

/// The signal handlers, installed; removed when the thread that waits on them ends.
pub(super) struct Watch(Signals);

impl Watch {
    /// Installs the handlers (nothing is delivered yet: the signals wait in a pipe).
    pub(super) fn new() -> io::Result<Self> {
        Ok(Watch(Signals::new([SIGTERM, SIGINT])?))
    }

    /// Waits for the signals on a thread of its own. The shutdown closes the watch when
    /// it ends, however it was started, so the thread ends and the handlers go.
    pub(super) fn spawn(self, shared: &Arc<Shared>) -> io::Result<()> {
        let handle = self.0.handle();
        *lock(&shared.signals) = Some(handle.clone());
        let for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("statefun-signals".into())
            .spawn(move || watch(self.0, &for_thread));
        if let Err(err) = spawned {
            lock(&shared.signals).take();
            handle.close();
            return Err(err);
        }
        Ok(())
    }
}

fn watch(mut signals: Signals, shared: &Arc<Shared>) {
    let mut stopping = false;
    for signal in signals.forever() {
        let name = if signal == SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        if shared.is_finished() {
            break;
        }
        if stopping {
            warn!("{name} again: stopping now, without waiting for the requests in flight");
            shared.force();
            continue;
        }
        stopping = true;
        info!(
            "{name}: shutting down (not ready, no new connections, waiting up to {:?} for \
             the requests in flight; another signal stops at once)",
            shared.shutdown_timeout
        );
        let for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("statefun-shutdown".into())
            .spawn(move || {
                if for_thread.shutdown() {
                    info!("shut down: every request in flight was answered");
                }
            });
        if let Err(err) = spawned {
            // Without a thread of its own, the shutdown runs here, and a second signal
            // waits for it.
            error!("cannot start the shutdown thread ({err}): shutting down on this one");
            shared.shutdown();
        }
    }
}

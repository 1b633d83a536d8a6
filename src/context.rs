//! What the refresh loops share: one cloneable [`Context`], built once by `app` and handed to
//! every loop. The HTTP side gets only the parts it reads (the state, the metrics, the clock).

use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use crate::assume::Assumer;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::schedule::Policy;
use crate::state::State;

/// The settings a reload can change while the loops run.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Calls STS (its client and time limit).
    pub assumer: Assumer,
    /// When to refresh and retry.
    pub policy: Policy,
}

/// What every refresh loop shares; cloning it is cheap (reference counts).
#[derive(Clone, Debug)]
pub struct Context {
    /// Replaced whole by a reload; read (and cloned) at each step, never held across an `.await`.
    settings: Arc<RwLock<LiveSettings>>,
    /// Writes the files.
    pub outputs: Arc<Outputs>,
    /// Where results are recorded, for the HTTP side to read.
    pub state: State,
    /// Bounds STS calls in flight across all roles (`refresh.concurrency`).
    pub sts_slots: Arc<Semaphore>,
    /// Counts every attempt and write.
    pub metrics: Arc<Metrics>,
    /// Where the time comes from.
    pub clock: Clock,
}

impl Context {
    /// A context over these parts.
    pub fn new(
        settings: LiveSettings,
        outputs: Arc<Outputs>,
        state: State,
        concurrency: usize,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Context {
        Context {
            settings: Arc::new(RwLock::new(settings)),
            outputs,
            state,
            sts_slots: Arc::new(Semaphore::new(concurrency)),
            metrics,
            clock,
        }
    }

    /// The current live settings.
    pub fn settings(&self) -> LiveSettings {
        self.settings
            .read()
            .expect("live settings lock poisoned")
            .clone()
    }

    /// Replaces the live settings (a reload); readiness follows the new `min_remaining`.
    pub fn set_settings(&self, settings: LiveSettings) {
        self.state.set_min_remaining(settings.policy.min_remaining);
        *self.settings.write().expect("live settings lock poisoned") = settings;
    }
}

//! `coflow serve`: webhook triggers, the scheduler, workers, the admin API and the web UI.

//! Partner Center emulator: referrals API, webhook registration and signed event delivery.

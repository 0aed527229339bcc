//! Desired-state model.

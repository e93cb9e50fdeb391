//! Event unit tests.

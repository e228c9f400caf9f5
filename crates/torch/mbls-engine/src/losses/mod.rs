//! Calibration losses with the reference semantics.

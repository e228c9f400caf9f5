//! Optimizers (SGD, Adam, AdamW) with PyTorch semantics and saveable state, learning-rate schedulers and gradient clipping.

//! Tiny-ImageNet-200 in its official layout.

//! CUB-200-2011 in its official layout.

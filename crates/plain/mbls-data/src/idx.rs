//! MNIST and Fashion-MNIST in the IDX format (gzipped or not).

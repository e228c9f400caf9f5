//! NumPy's legacy global RNG (MT19937 `init_genrand`) and its `shuffle`/`permutation`, bit-exact.

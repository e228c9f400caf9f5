//! CIFAR-10 and CIFAR-100 in their official python-pickle and binary formats.

//! The reference's train/validation/test splits (CIFAR 45k/5k, Tiny-ImageNet 50 per class, 20 Newsgroups).

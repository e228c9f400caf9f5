//! Image-folder datasets (one sub-folder per class) and a writer of CIFAR binary files.

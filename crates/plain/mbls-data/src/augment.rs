//! Image augmentations of the reference (torchvision-style) and conversion to normalised CHW floats.

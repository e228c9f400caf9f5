//! Albumentations-style augmentations of the reference for VOC and CUB (image and mask).

//! Pascal VOC 2012 segmentation in its official layout.

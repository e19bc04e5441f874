//! Layout and encoding of set images.

//! wsx

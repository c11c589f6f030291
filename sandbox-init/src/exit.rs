//! TODO(skeleton): exit

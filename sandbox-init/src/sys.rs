//! TODO(skeleton): sys

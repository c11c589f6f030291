//! TODO(skeleton): home

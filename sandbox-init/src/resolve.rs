//! TODO(skeleton): resolve

//! TODO(skeleton): policy

//! TODO(skeleton): secrets

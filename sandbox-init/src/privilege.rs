//! TODO(skeleton): privilege

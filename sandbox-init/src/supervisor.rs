//! TODO(skeleton): supervisor

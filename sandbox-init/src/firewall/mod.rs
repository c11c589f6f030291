//! TODO(skeleton): firewall

//! TODO(skeleton): throw-away network namespaces.

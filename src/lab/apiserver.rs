//! TODO(skeleton): the in-repo Lease endpoint.

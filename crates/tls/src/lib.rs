//! TLS for every connection ctxmesh makes or accepts, with rustls.

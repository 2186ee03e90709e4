//! The package cache: packages by what identifies them, in which
//! identical concurrent requests (and a prefetch) share one computation.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ctxmesh_core::access::EntryScope;
use ctxmesh_core::mesh::Package;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::tokens::Encoding;
use super::{Mesh, lock};
use crate::error::ApiResult;

/// What identifies a package.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PackageKey {
    pub(crate) context: String,
    pub(crate) revision: u64,
    pub(crate) agent: String,
    pub(crate) budget: usize,
    pub(crate) encoding: Encoding,
    pub(crate) explain: bool,
    pub(crate) compress: bool,
    /// The access it was built under (the caller's and the agent's).
    pub(crate) access: u64,
}

/// The fingerprint of the scopes a package is filtered by.
pub(crate) fn access_fingerprint(scopes: &[&EntryScope]) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{scopes:?}").hash(&mut h);
    h.finish()
}

/// A package being computed, or computed: every request for it awaits
/// the same computation.
pub(super) type Pending = Shared<BoxFuture<'static, ApiResult<Arc<Package>>>>;

impl Mesh {
    /// The computation of `key`: the one under way or done, else `compute`
    /// (then `true`), started in the same step so that no two requests
    /// compute one package.
    pub(super) fn start(&self, key: PackageKey, compute: BoxFuture<'static, ApiResult<Package>>) -> (Pending, bool) {
        let mut packages = lock(&self.packages);
        if let Some(pending) = packages.get(&key) {
            return (pending, false);
        }
        let pending = compute.map(|r| r.map(Arc::new)).boxed().shared();
        packages.insert(key, pending.clone());
        (pending, true)
    }

    /// The package for `key` and whether it came from the cache (computed
    /// before, or by a concurrent identical request); the computation
    /// `make` gives runs once. A failed computation is forgotten; a request
    /// that found one failed (a prefetch, say) computes it again itself.
    pub(crate) async fn package(
        &self,
        key: PackageKey,
        make: impl Fn() -> BoxFuture<'static, ApiResult<Package>>,
    ) -> ApiResult<(Arc<Package>, bool)> {
        let (pending, computed) = self.start(key.clone(), make());
        let (result, computed) = match pending.await {
            Err(_) if !computed => {
                self.forget(&key);
                let (pending, computed) = self.start(key.clone(), make());
                (pending.await, computed)
            }
            result => (result, computed),
        };
        if result.is_err() {
            self.forget(&key);
        }
        self.count(!computed);
        Ok((result?, !computed))
    }

    fn forget(&self, key: &PackageKey) {
        lock(&self.packages).remove(key);
    }

    fn count(&self, hit: bool) {
        let (hits, misses) = if hit {
            (self.hits.fetch_add(1, Ordering::Relaxed) + 1, self.misses.load(Ordering::Relaxed))
        } else {
            (self.hits.load(Ordering::Relaxed), self.misses.fetch_add(1, Ordering::Relaxed) + 1)
        };
        metrics::counter!("ctxmesh_package_requests_total", "cache" => if hit { "hit" } else { "miss" }).increment(1);
        metrics::gauge!("ctxmesh_package_cache_hit_ratio").set(hits as f64 / (hits + misses).max(1) as f64);
    }
}

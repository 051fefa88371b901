//! Packed weights (Winograd-transformed, or regrouped by tap) kept between calls, so that a
//! model's layers pack their weights once, not on every forward pass.
//!
//! An entry holds a strong reference to the weights' storage: while it does, that storage cannot
//! change (burn's `flex` tensors copy shared storage before writing to it), so an entry whose
//! storage and layout match is valid. Entries whose storage nobody else holds any more (a model
//! dropped, weights replaced by an optimiser step) are released on the next lookup.

use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;

use super::cpu::{Geometry, PackedWeights};

/// Most entries kept; the oldest go first beyond this.
const CAPACITY: usize = 256;

struct Entry {
    storage: Arc<burn::tensor::Bytes>,
    offset: usize,
    geometry: Geometry,
    packed: Arc<PackedWeights>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// The packed weights of `weight` (contiguous `f32` `[c_out, c_in, kh, kw]`) for layer `g`, from
/// the cache or packed now; `None` where the layer does not use packed weights.
pub(super) fn packed_weights(
    weight: &FlexTensor,
    w: &[f32],
    g: &Geometry,
) -> Option<Arc<PackedWeights>> {
    let storage = weight.data_arc();
    let offset = weight.layout().start_offset();
    let key = |e: &Entry| Arc::ptr_eq(&e.storage, &storage) && e.offset == offset;
    // The kernel, hence the packing, depends on the input size, not on the batch.
    let per_layer = |g: &Geometry| Geometry { batch: 0, ..*g };
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Entries whose storage only the cache still holds (one reference per entry: a layer run
    // at several input sizes has several) are released.
    let cache_refs = |storage: &Arc<burn::tensor::Bytes>, cache: &[Entry]| {
        cache
            .iter()
            .filter(|e| Arc::ptr_eq(&e.storage, storage))
            .count()
    };
    let released: Vec<bool> = cache
        .iter()
        .map(|e| !key(e) && Arc::strong_count(&e.storage) <= cache_refs(&e.storage, &cache))
        .collect();
    let mut released = released.into_iter();
    cache.retain(|_| !released.next().unwrap_or(false));
    if let Some(e) = cache.iter().find(|e| key(e) && e.geometry == per_layer(g)) {
        return Some(e.packed.clone());
    }
    let packed = Arc::new(PackedWeights::new(w, g)?);
    if cache.len() >= CAPACITY {
        cache.remove(0);
    }
    cache.push(Entry {
        storage,
        offset,
        geometry: per_layer(g),
        packed: packed.clone(),
    });
    Some(packed)
}

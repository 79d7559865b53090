//! The output vector: its size checked against the model (MRL keeps a prefix), the last
//! token's state truncated to it and scaled to unit length.

use crate::error::{EngineError, Result};

/// Smallest output size allowed for MRL truncation.
pub const MIN_DIMS: usize = 32;

/// Checks `dims` against the model's hidden size; `None` means the full size.
pub fn output_dims(dims: Option<usize>, hidden: usize) -> Result<usize> {
    let d = dims.unwrap_or(hidden);
    if d < MIN_DIMS.min(hidden) || d > hidden {
        return Err(EngineError::InvalidDims { dims: d, max: hidden });
    }
    Ok(d)
}

/// The first `dims` values of `hidden_state`, scaled to unit L2 norm (accumulated in f64).
/// A zero vector stays zero; a non-finite value is an error, never a vector.
pub fn truncate_normalize(hidden_state: &[f32], dims: usize) -> Result<Vec<f32>> {
    let v = &hidden_state[..dims];
    let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return Err(EngineError::Compute("the model produced non-finite values (are the weights broken?)".into()));
    }
    if norm == 0.0 {
        return Ok(v.to_vec());
    }
    Ok(v.iter().map(|&x| (x as f64 / norm) as f32).collect())
}

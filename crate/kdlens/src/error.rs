//! The error type of the core library.

/// Everything that can go wrong in the core library. Each message names the offending value and,
/// where one exists, what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer name that the model does not have.
    #[error("unknown layer `{name}`; this model's layers are: {available}")]
    UnknownLayer {
        /// The name that was asked for.
        name: String,
        /// The model's layer names, comma-separated.
        available: String,
    },
    /// A class index outside `0..num_classes`.
    #[error("class index {index} is out of range: the model has {num_classes} classes")]
    ClassOutOfRange {
        /// The index that was asked for.
        index: usize,
        /// The number of classes of the model.
        num_classes: usize,
    },
    /// An image whose dimensions or pixel buffer cannot be used.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// An image file or byte buffer that cannot be decoded (corrupt, truncated, unsupported or
    /// too large).
    #[error("{0}")]
    Decode(String),
    /// A model configuration that cannot be built (for example an input too small for the
    /// network's pooling stages).
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A request that contradicts itself or the model (empty background set, zero samples …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A model bundle that is not a valid kdlens bundle.
    #[error("invalid model bundle: {0}")]
    InvalidBundle(String),
    /// Weights that do not fit the model they are loaded into.
    #[error("weights do not fit the model: {0}")]
    Weights(String),
    /// Reading tensor data back from the device failed.
    #[error("reading results back from the device failed: {0}")]
    Readback(String),
    /// Inputs of inconsistent lengths (predictions and labels, for example).
    #[error("length mismatch: {0}")]
    LengthMismatch(String),
}

/// Result alias of the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

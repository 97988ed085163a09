/// Why an image could not be converted. Every variant is permanent for that input: retrying the
/// same bytes gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("input is empty")]
    Empty,
    #[error("input is not an image of a known format")]
    UnknownFormat,
    #[error("image is {width}x{height} = {pixels} pixels, over the cap of {cap}")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        cap: u64,
    },
    #[error("{format} data ends before the image does: the file is truncated")]
    Truncated { format: String },
    #[error("cannot decode {format} image: {message}")]
    Decode { format: String, message: String },
    #[error("WebP encoder refused the image: {0}")]
    Encode(String),
}

impl CodecError {
    /// True when the input itself is unusable (as opposed to the encoder failing).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, CodecError::Encode(_) | CodecError::TooLarge { .. })
    }
}

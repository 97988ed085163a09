//! Pixels in, pixels out: decode what users uploaded (applying EXIF orientation), encode WebP,
//! make JPEG thumbnails, and synthesise photo-like test images. Pure CPU, bytes in and out; the
//! worker runs these on its bounded CPU pool.

mod decode;
mod encode;
mod error;
mod synth;
mod thumbnail;

pub use decode::{decode, probe, ImageInfo, DEFAULT_MAX_PIXELS};
pub use encode::{encode_webp, transcode, EncodeOptions, Transcoded};
pub use error::CodecError;
pub use synth::synth_photo_jpeg;
pub use thumbnail::{placeholder_thumbnail_jpeg, thumbnail_jpeg};

//! Pixels in, pixels out: decode what users uploaded (applying EXIF orientation), encode WebP
//! with the fidelity rules of docs/codec.md (metadata, quality guard, saving), make JPEG
//! thumbnails, and synthesise photo-like test images. Pure CPU, bytes in and out; the worker
//! runs these on its bounded CPU pool.

mod container;
mod convert;
mod decode;
mod encode;
mod error;
mod exif;
mod gif_frames;
mod libwebp_enc;
mod predict;
mod quality;
mod scaled;
mod search;
mod ssim2;
mod ssim2_kernels;
mod ssim2_stream;
mod synth;
mod thumbnail;
mod truncation;

pub use convert::{
    convert, Conversion, ConvertOptions, Converted, KeepReason, DEFAULT_MAX_QUALITY,
    DEFAULT_TARGET_SCORE,
};
pub use decode::{decode, decode_with_metadata, probe, Decoded, ImageInfo, DEFAULT_MAX_PIXELS};
pub use encode::{encode_rgb_in_strips, encode_webp, transcode, EncodeOptions, Transcoded};
pub use error::CodecError;
pub use predict::{jpeg_quality, quality_after_probe, AIM_ABOVE, PROBE_QUALITY};
pub use quality::{
    quality_score, ssimulacra2_streamed, ssimulacra2_whole, DEFAULT_COMPARE_PIXELS, TILE_SIDE,
};
pub use scaled::{ScaledImage, ScaledJpeg, Unscalable};
pub use search::{choose_quality, Choice, Prober, CHECK_MARGIN, MAX_ENCODES, MIN_QUALITY};
pub use synth::synth_photo_jpeg;
pub use thumbnail::{placeholder_thumbnail_jpeg, thumbnail_jpeg};

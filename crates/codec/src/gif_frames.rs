//! Counting the frames of a GIF without decoding them, so that a conversion of an animated GIF
//! (which keeps its first frame) can say how many frames were left behind.

/// Image descriptors in a GIF, counted by walking its blocks (no LZW decoding). A file that ends
/// early counts the frames seen so far; anything that is not a GIF counts 0.
pub fn gif_frame_count(gif: &[u8]) -> u32 {
    if !(gif.starts_with(b"GIF87a") || gif.starts_with(b"GIF89a")) || gif.len() < 13 {
        return 0;
    }
    let mut at = 13 + colour_table_len(gif[10]);
    let mut frames = 0;
    loop {
        match gif.get(at) {
            Some(0x2C) => {
                frames += 1;
                let Some(&flags) = gif.get(at + 9) else {
                    return frames;
                };
                // Descriptor (10 bytes), local colour table, LZW minimum code size, data.
                at = skip_sub_blocks(gif, at + 10 + colour_table_len(flags) + 1);
            }
            Some(0x21) => at = skip_sub_blocks(gif, at + 2),
            _ => return frames, // 0x3B trailer, the end of the data, or garbage
        }
    }
}

/// Bytes of the colour table announced by a flags byte (bit 7 set: present; bits 0-2: size).
fn colour_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 {
        0
    } else {
        3 << ((flags & 0x07) + 1)
    }
}

/// Offset after a chain of sub-blocks (length byte, data) ended by a zero length.
fn skip_sub_blocks(gif: &[u8], mut at: usize) -> usize {
    while let Some(&len) = gif.get(at) {
        at += 1 + usize::from(len);
        if len == 0 {
            return at;
        }
    }
    gif.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::{Frame, Rgba, RgbaImage};

    fn gif(frames: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = GifEncoder::new(&mut out);
        for i in 0..frames {
            let colour = Rgba([i.wrapping_mul(80), 100, 200 - i, 255]);
            encoder
                .encode_frame(Frame::new(RgbaImage::from_pixel(20, 10, colour)))
                .unwrap();
        }
        drop(encoder);
        out
    }

    #[test]
    fn frames_are_counted_and_non_gifs_have_none() {
        assert_eq!(gif_frame_count(&gif(1)), 1);
        assert_eq!(gif_frame_count(&gif(5)), 5);
        let five = gif(5);
        assert!(gif_frame_count(&five[..five.len() / 2]) < 5);
        assert_eq!(gif_frame_count(b"\x89PNG\r\n\x1a\n"), 0);
    }
}

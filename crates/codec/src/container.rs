//! Adding ICC and EXIF chunks to a WebP file written by libwebp. The workspace forbids `unsafe`,
//! which rules out libwebp's WebPMux through FFI, and the RIFF layout is small enough to write:
//! `RIFF size WEBP`, then `VP8X` (flags and canvas size), `ICCP`, the image chunks, `EXIF`.

const VP8X_ICC: u8 = 0x20;
const VP8X_EXIF: u8 = 0x08;

/// One RIFF chunk of a WebP file: its four-character code and payload.
struct Chunk<'a> {
    fourcc: [u8; 4],
    payload: &'a [u8],
}

fn chunks(webp: &[u8]) -> Option<Vec<Chunk<'_>>> {
    if webp.len() < 12 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return None;
    }
    let mut out = Vec::new();
    let mut at = 12;
    while at < webp.len() {
        let head = webp.get(at..at + 8)?;
        let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
        let payload = webp.get(at + 8..at + 8 + len)?;
        out.push(Chunk {
            fourcc: head[..4].try_into().ok()?,
            payload,
        });
        // Payloads of odd length are followed by one padding byte.
        at += 8 + len + (len & 1);
    }
    Some(out)
}

fn push_chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
}

/// Returns `webp` with an ICC profile and/or an EXIF block attached (an extended-format file),
/// or `webp` unchanged when there is nothing to attach. `width` and `height` are the canvas size.
/// Fails only on a file libwebp would not write (not RIFF/WEBP, or a chunk running past the end).
pub fn attach_metadata(
    webp: Vec<u8>,
    width: u32,
    height: u32,
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    if icc.is_none() && exif.is_none() {
        return Ok(webp);
    }
    let parsed = chunks(&webp).ok_or("the encoder's output is not a well-formed WebP file")?;
    // libwebp writes VP8X only when the image has alpha; its flags are kept and ours added.
    let mut flags = parsed
        .iter()
        .find(|c| &c.fourcc == b"VP8X")
        .and_then(|c| c.payload.first().copied())
        .unwrap_or(0);
    if icc.is_some() {
        flags |= VP8X_ICC;
    }
    if exif.is_some() {
        flags |= VP8X_EXIF;
    }
    let mut vp8x = [0u8; 10];
    vp8x[0] = flags;
    vp8x[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);

    let extra = icc.map_or(0, |p| p.len() + 9) + exif.map_or(0, |p| p.len() + 9);
    let mut out = Vec::with_capacity(webp.len() + 18 + extra);
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    push_chunk(&mut out, b"VP8X", &vp8x);
    if let Some(icc) = icc {
        push_chunk(&mut out, b"ICCP", icc);
    }
    for chunk in parsed
        .iter()
        .filter(|c| !matches!(&c.fourcc, b"VP8X" | b"ICCP" | b"EXIF"))
    {
        push_chunk(&mut out, &chunk.fourcc, chunk.payload);
    }
    if let Some(exif) = exif {
        push_chunk(&mut out, b"EXIF", exif);
    }
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageDecoder;

    fn tiny_webp(alpha: bool) -> Vec<u8> {
        let pixels = vec![200u8; 16 * 16 * 4];
        let encoder = if alpha {
            webp::Encoder::from_rgba(&pixels, 16, 16)
        } else {
            webp::Encoder::from_rgb(&pixels[..16 * 16 * 3], 16, 16)
        };
        encoder.encode(80.0).to_vec()
    }

    fn read_back(webp: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>, bool) {
        let mut d = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(webp)).unwrap();
        let alpha = d.color_type().has_alpha();
        (d.icc_profile().unwrap(), d.exif_metadata().unwrap(), alpha)
    }

    #[test]
    fn icc_and_exif_are_readable_by_another_decoder_with_and_without_alpha() {
        for alpha in [false, true] {
            let icc = b"odd-length profile".to_vec();
            let exif = b"II*\0exif".to_vec();
            let out = attach_metadata(tiny_webp(alpha), 16, 16, Some(&icc), Some(&exif)).unwrap();
            assert_eq!(
                read_back(&out),
                (Some(icc), Some(exif), alpha),
                "alpha {alpha}"
            );
            assert_eq!(
                u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
                out.len() - 8
            );
            let decoded = webp::Decoder::new(&out)
                .decode()
                .expect("libwebp decodes it");
            assert_eq!((decoded.width(), decoded.height()), (16, 16));
        }
    }

    #[test]
    fn nothing_to_attach_leaves_the_file_alone_and_garbage_is_refused() {
        let plain = tiny_webp(false);
        assert_eq!(
            attach_metadata(plain.clone(), 16, 16, None, None).unwrap(),
            plain
        );
        assert!(
            attach_metadata(b"RIFF\x10\0\0\0WEBPVP8 ".to_vec(), 1, 1, Some(b"x"), None).is_err()
        );
    }
}

//! Spotting a truncated JPEG before decoding it. The JPEG decoder pads a scan that ends early
//! with grey and reports success, and the quality guard cannot see that (it compares with the
//! same padded pixels), so a cut-off upload would become a WebP with a grey bottom.

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// True when a JPEG has no end-of-image marker after its first scan starts. Markers are
/// followed from the start of the file rather than searched for, because an EXIF thumbnail is a
/// whole JPEG, scan and end marker included, inside the header segments. Inside scans, a 0xFF
/// data byte is always stuffed (FF 00), so FF D9 there is the real end marker.
pub fn jpeg_is_truncated(jpeg: &[u8]) -> bool {
    if jpeg.get(..2) != Some(&[0xFF, SOI]) {
        return false; // not ours to judge: the decoder reports it
    }
    let mut at = 2;
    let scan = loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while jpeg.get(at) == Some(&0xFF) && jpeg.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let marker = match jpeg.get(at..at + 2) {
            Some(&[0xFF, m]) => m,
            Some(_) => return false, // malformed, not truncated: the decoder says why
            None => return true,
        };
        match marker {
            SOS => break at,
            EOI => return false,
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => match jpeg.get(at + 2..at + 4) {
                Some(len) => at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]])),
                None => return true,
            },
        }
    };
    !jpeg[scan..].windows(2).any(|w| w == [0xFF, EOI])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_files_pass_and_cut_ones_do_not() {
        let jpeg = crate::synth_photo_jpeg(3, 320, 240);
        assert!(!jpeg_is_truncated(&jpeg));
        let mut with_trailer = jpeg.clone();
        with_trailer.extend_from_slice(b"vendor trailer after EOI");
        assert!(!jpeg_is_truncated(&with_trailer));
        for cut in [4, 100, jpeg.len() / 2, jpeg.len() - 2] {
            assert!(jpeg_is_truncated(&jpeg[..cut]), "cut at {cut}");
        }
        assert!(!jpeg_is_truncated(b"not a jpeg"));
    }
}

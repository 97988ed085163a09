//! Cleaning an EXIF block (a TIFF structure, as found after `Exif\0\0` in a JPEG) before it is
//! carried into a WebP: the GPS IFD is erased and the orientation tag removed, since the pixels
//! are already upright. The block is edited in place rather than rebuilt, because maker notes
//! hold offsets relative to the TIFF header that a rebuild would break.

const TAG_ORIENTATION: u16 = 0x0112;
const TAG_GPS_IFD: u16 = 0x8825;
const ENTRY_LEN: usize = 12;

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

struct Tiff<'a> {
    bytes: &'a mut [u8],
    endian: Endian,
}

impl Tiff<'_> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(match self.endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    fn put_u16(&mut self, at: usize, v: u16) {
        let b = match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        self.bytes[at..at + 2].copy_from_slice(&b);
    }

    fn zero(&mut self, start: usize, len: usize) -> Option<()> {
        self.bytes.get_mut(start..start.checked_add(len)?)?.fill(0);
        Some(())
    }

    /// Offset of an IFD's entries and its entry count, checked to lie inside the block.
    fn ifd(&self, at: usize) -> Option<(usize, usize)> {
        let count = usize::from(self.u16_at(at)?);
        let end = at + 2 + count * ENTRY_LEN + 4;
        (end <= self.bytes.len()).then_some((at + 2, count))
    }

    /// Bytes of an entry's value, whether inline (up to 4 bytes) or at an offset.
    fn value_len(&self, entry: usize) -> Option<usize> {
        let unit = match self.u16_at(entry + 2)? {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 | 13 => 4,
            5 | 10 | 12 => 8,
            _ => return None,
        };
        usize::try_from(self.u32_at(entry + 4)?)
            .ok()?
            .checked_mul(unit)
    }

    /// Erases an IFD and every value it points at.
    fn erase_ifd(&mut self, at: usize) -> Option<()> {
        let (entries, count) = self.ifd(at)?;
        for i in 0..count {
            let entry = entries + i * ENTRY_LEN;
            let len = self.value_len(entry)?;
            if len > 4 {
                let offset = usize::try_from(self.u32_at(entry + 8)?).ok()?;
                self.zero(offset, len)?;
            }
        }
        self.zero(at, 2 + count * ENTRY_LEN + 4)
    }
}

/// Returns the EXIF block without GPS data and without an orientation tag, or `None` when the
/// block cannot be parsed well enough to be sure the GPS data is gone (the caller then drops
/// the EXIF block entirely: privacy wins over metadata).
pub fn strip_gps_and_orientation(exif: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = exif.to_vec();
    let endian = match bytes.get(..4)? {
        [b'I', b'I', 42, 0] => Endian::Little,
        [b'M', b'M', 0, 42] => Endian::Big,
        _ => return None,
    };
    let mut tiff = Tiff {
        bytes: &mut bytes,
        endian,
    };
    let ifd0 = usize::try_from(tiff.u32_at(4)?).ok()?;
    let (entries, count) = tiff.ifd(ifd0)?;
    let mut kept = Vec::with_capacity(count * ENTRY_LEN);
    for i in 0..count {
        let entry = entries + i * ENTRY_LEN;
        match tiff.u16_at(entry)? {
            TAG_GPS_IFD => {
                let gps = usize::try_from(tiff.u32_at(entry + 8)?).ok()?;
                tiff.erase_ifd(gps)?;
            }
            TAG_ORIENTATION => {}
            _ => kept.extend_from_slice(&tiff.bytes[entry..entry + ENTRY_LEN]),
        }
    }
    // Rewrite IFD0 in place: fewer entries, the next-IFD link moved up behind them, the freed
    // tail zeroed. Values stay where they were, so every other offset is still right.
    let next_ifd: [u8; 4] = tiff.bytes[entries + count * ENTRY_LEN..][..4]
        .try_into()
        .ok()?;
    let kept_count = kept.len() / ENTRY_LEN;
    tiff.put_u16(ifd0, u16::try_from(kept_count).ok()?);
    tiff.bytes[entries..entries + kept.len()].copy_from_slice(&kept);
    tiff.bytes[entries + kept.len()..][..4].copy_from_slice(&next_ifd);
    tiff.zero(entries + kept.len() + 4, (count - kept_count) * ENTRY_LEN)?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian EXIF block: IFD0 with Make, Orientation=6 and a GPS pointer; a GPS IFD
    /// with a latitude (3 rationals, stored out of line).
    fn sample() -> Vec<u8> {
        let mut b = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
        // IFD0 at 8: 3 entries, ends at 8 + 2 + 36 + 4 = 50.
        b.extend_from_slice(&3u16.to_le_bytes());
        let entry = |tag: u16, ty: u16, count: u32, value: u32| {
            let mut e = tag.to_le_bytes().to_vec();
            e.extend_from_slice(&ty.to_le_bytes());
            e.extend_from_slice(&count.to_le_bytes());
            e.extend_from_slice(&value.to_le_bytes());
            e
        };
        b.extend(entry(0x010F, 2, 4, u32::from_le_bytes(*b"Cam\0")));
        b.extend(entry(TAG_ORIENTATION, 3, 1, 6));
        b.extend(entry(TAG_GPS_IFD, 4, 1, 50));
        b.extend_from_slice(&0u32.to_le_bytes());
        // GPS IFD at 50: 1 entry, ends at 50 + 2 + 12 + 4 = 68; latitude rationals at 68.
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend(entry(0x0002, 5, 3, 68));
        b.extend_from_slice(&0u32.to_le_bytes());
        for v in [48u32, 1, 51, 1, 2944, 100] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn gps_and_orientation_are_gone_and_the_rest_stays() {
        let input = sample();
        let out = strip_gps_and_orientation(&input).unwrap();
        assert_eq!(out.len(), input.len());
        assert_eq!(&out[8..10], &1u16.to_le_bytes(), "IFD0 keeps one entry");
        assert_eq!(&out[10..12], &0x010Fu16.to_le_bytes(), "Make is kept");
        assert_eq!(&out[18..22], b"Cam\0");
        assert_eq!(
            &out[22..26],
            &[0; 4],
            "next-IFD link follows the kept entry"
        );
        assert!(out[26..].iter().all(|&b| b == 0), "GPS bytes remain");
        assert_eq!(
            image::metadata::Orientation::from_exif_chunk(&out),
            None,
            "orientation still readable"
        );
    }

    #[test]
    fn unparseable_blocks_are_refused_rather_than_passed_through() {
        assert!(strip_gps_and_orientation(b"").is_none());
        assert!(strip_gps_and_orientation(b"XX\x2a\x00\x08\x00\x00\x00").is_none());
        let mut truncated = sample();
        truncated.truncate(60);
        assert!(strip_gps_and_orientation(&truncated).is_none());
    }
}

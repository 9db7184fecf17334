//! Bytes to text: BOMs, UTF-16, legacy single-byte files, binary detection.

use serde::Serialize;

use crate::error::TextError;

/// How the bytes of a source were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceEncoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
    /// Not valid UTF-8: read as Windows-1252 (a superset of Latin-1 for printable text).
    Windows1252,
}

/// Windows-1252 bytes 0x80..=0x9F. The five bytes the code page leaves undefined map to
/// the C1 control of the same value, as Latin-1 does, so every byte has a character and
/// the mapping can be inverted when repairing double-encoded text.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

pub(crate) fn cp1252_char(byte: u8) -> char {
    match byte {
        0x80..=0x9F => CP1252_HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// The Windows-1252 byte (0x80 and above) that decodes to `c`, if any.
pub(crate) fn cp1252_byte(c: char) -> Option<u8> {
    match u32::from(c) {
        0xA0..=0xFF => u8::try_from(u32::from(c)).ok(),
        0x80..=0x9F => u8::try_from(u32::from(c)).ok(),
        0x100.. => CP1252_HIGH
            .iter()
            .position(|&high| high == c)
            .and_then(|index| u8::try_from(0x80 + index).ok()),
        _ => None,
    }
}

/// Decodes a whole file. `source` only names it in errors.
pub fn decode(bytes: &[u8], source: &str) -> Result<(String, SourceEncoding), TextError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8_or_legacy(rest, source, SourceEncoding::Utf8Bom);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return Ok((
            decode_utf16(rest, u16::from_le_bytes),
            SourceEncoding::Utf16Le,
        ));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return Ok((
            decode_utf16(rest, u16::from_be_bytes),
            SourceEncoding::Utf16Be,
        ));
    }
    utf8_or_legacy(bytes, source, SourceEncoding::Utf8)
}

fn utf8_or_legacy(
    bytes: &[u8],
    source: &str,
    utf8: SourceEncoding,
) -> Result<(String, SourceEncoding), TextError> {
    // Text files never hold NUL; UTF-16 without a BOM and binary formats always do.
    if let Some(offset) = bytes.iter().take(64 * 1024).position(|&b| b == 0) {
        return Err(TextError::Binary {
            source_name: source.to_owned(),
            offset,
        });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text.to_owned(), utf8)),
        Err(_) => {
            let text = bytes.iter().map(|&b| cp1252_char(b)).collect();
            Ok((text, SourceEncoding::Windows1252))
        }
    }
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_high_byte_round_trips() {
        for byte in 0x80..=0xFFu8 {
            assert_eq!(cp1252_byte(cp1252_char(byte)), Some(byte), "byte {byte:#x}");
        }
        assert_eq!(cp1252_byte('a'), None);
        assert_eq!(cp1252_byte('é'), Some(0xE9));
        assert_eq!(cp1252_byte('€'), Some(0x80));
    }

    #[test]
    fn reads_boms_utf16_and_windows_1252() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFa", "f").unwrap(),
            ("a".into(), SourceEncoding::Utf8Bom)
        );
        assert_eq!(
            decode(b"\xFF\xFEa\0\xE9\0", "f").unwrap(),
            ("aé".into(), SourceEncoding::Utf16Le)
        );
        assert_eq!(
            decode(b"\xFE\xFF\0a\0\xE9", "f").unwrap(),
            ("aé".into(), SourceEncoding::Utf16Be)
        );
        assert_eq!(
            decode(b"Cr\xE9er \x80 \x92", "f").unwrap(),
            ("Créer € ’".into(), SourceEncoding::Windows1252)
        );
    }

    #[test]
    fn binary_is_refused_with_its_offset() {
        let err = decode(b"PK\x03\x04\0\0", "a.zip").unwrap_err();
        assert!(err.to_string().contains("a.zip"), "{err}");
        assert!(matches!(err, TextError::Binary { offset: 4, .. }));
    }
}

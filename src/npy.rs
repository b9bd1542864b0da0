//! NumPy `.npy` files for bit sequences: one byte (0 or 1) per bit, dtype `|u1`, 1-D.
//!
//! Format v1.0 (numpy's `lib.format`): the magic `\x93NUMPY`, version bytes `1 0`, a
//! little-endian `u16` header length, then an ASCII Python dict literal
//! `{'descr': '|u1', 'fortran_order': False, 'shape': (len,), }` padded with spaces and ended by
//! `\n` so that the data starts at a multiple of 64 bytes, then the `len` data bytes.
//!
//! [`write_bits_u8`] streams the bytes (memory does not grow with `len`) and writes
//! atomically with [`output::write_atomic`], so a failed write never leaves a half-written
//! `.npy` behind.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result, output};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data offset is a multiple of this (numpy's `ARRAY_ALIGN`).
const ALIGN: usize = 64;

/// The full v1.0 header (magic to newline) for a 1-D `|u1` array of `len` elements.
fn header(len: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({len},), }}");
    // magic (6) + version (2) + header length (2) + dict + padding + '\n'
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    let pad = unpadded.next_multiple_of(ALIGN) - unpadded;
    let header_len = u16::try_from(dict.len() + pad + 1).expect("a 1-D header fits in u16");
    let mut out = Vec::with_capacity(unpadded + pad);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    debug_assert_eq!(out.len() % ALIGN, 0);
    out
}

/// Writes bits `0..len` of `words` (bit `i` at word `i / 64`, bit `i % 64`) to `path` as a
/// 1-D `|u1` `.npy` array of 0s and 1s.
///
/// Streamed through a `BufWriter` one word (64 bytes) at a time, and atomic
/// ([`output::write_atomic`]): written to a temporary file in the same directory and renamed
/// over `path` once flushed and synced.
///
/// # Errors
/// [`Error::Usage`] if `len > 64 * words.len()`; [`Error::Io`] if the file cannot be
/// created, written or renamed (the temporary file is removed).
pub fn write_bits_u8(path: &Path, words: &[u64], len: usize) -> Result<()> {
    if len > 64 * words.len() {
        return Err(Error::Usage(format!(
            "{}: {len} bits requested but only {} given",
            path.display(),
            64 * words.len()
        )));
    }
    output::write_atomic(path, |out| {
        out.write_all(&header(len))?;
        let mut bytes = [0u8; 64];
        for (w, &word) in words.iter().enumerate().take(len.div_ceil(64)) {
            for (bit, byte) in bytes.iter_mut().enumerate() {
                *byte = (word >> bit & 1) as u8;
            }
            let n = (len - 64 * w).min(64);
            out.write_all(&bytes[..n])?;
        }
        Ok(())
    })
}

/// The value text of `'key':` in a numpy header dict: a quoted string (without quotes), a
/// parenthesised tuple (with parentheses), or a bare word.
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let start = dict.find(&format!("'{key}':"))? + key.len() + 3;
    let rest = dict[start..].trim_start();
    match rest.as_bytes().first()? {
        q @ (b'\'' | b'"') => {
            let end = rest[1..].find(char::from(*q))?;
            Some(&rest[1..=end])
        }
        b'(' => Some(&rest[..=rest.find(')')?]),
        _ => Some(rest[..rest.find([',', '}'])?].trim()),
    }
}

/// Reads a 1-D `u1` `.npy` file (format v1, v2 or v3) into its bytes.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::BadFile`] if it is not a 1-D, C- or
/// Fortran-order `u1` array whose data length matches its shape.
pub fn read_u8_1d(path: &Path) -> Result<Vec<u8>> {
    let bad = |reason: &str| Error::bad_file(path, format!("not a 1-D u1 .npy file: {reason}"));
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (
                usize::try_from(len).map_err(|_| bad("header too long"))?,
                12,
            )
        }
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(bad("truncated header"));
    }
    let dict = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| bad("header is not text"))?
        .trim_end();
    if !dict.starts_with('{') || !dict.ends_with('}') {
        return Err(bad("header is not a dict"));
    }
    match dict_value(dict, "descr") {
        Some("|u1" | "<u1" | ">u1" | "u1") => {}
        Some(d) => return Err(bad(&format!("dtype {d:?}, want '|u1'"))),
        None => return Err(bad("no 'descr'")),
    }
    if !matches!(dict_value(dict, "fortran_order"), Some("False" | "True")) {
        return Err(bad("no valid 'fortran_order'"));
    }
    let shape = dict_value(dict, "shape").ok_or_else(|| bad("no 'shape'"))?;
    let dims: Vec<&str> = shape[1..shape.len() - 1]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let len: usize = match dims[..] {
        [d] => d.parse().map_err(|_| bad(&format!("shape {shape}")))?,
        _ => return Err(bad(&format!("shape {shape} is not 1-D"))),
    };
    let data = &bytes[data_start..];
    if data.len() != len {
        return Err(bad(&format!(
            "shape ({len},) but {} data bytes",
            data.len()
        )));
    }
    Ok(data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh empty directory for one test.
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bitrnn-npy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A deterministic bit pattern with no period of 64.
    fn words(n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
            .collect()
    }

    #[test]
    fn header_is_padded_to_64_and_ends_in_newline() {
        for len in [0, 1, 9, 10, 99, 1000, 500_000, 100_000_000, usize::MAX] {
            let h = header(len);
            assert_eq!(h.len() % 64, 0, "len {len}");
            assert_eq!(*h.last().unwrap(), b'\n');
            let header_len = usize::from(u16::from_le_bytes([h[8], h[9]]));
            assert_eq!(10 + header_len, h.len());
        }
    }

    #[test]
    fn header_matches_numpy_byte_for_byte() {
        // np.lib.format.header_data_from_array_1_0 + _wrap_header for np.zeros(3, np.uint8),
        // without numpy's optional growth padding.
        let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }";
        let mut want = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        want.extend_from_slice(dict.as_bytes());
        want.resize(127, b' ');
        want.push(b'\n');
        assert_eq!(header(3), want);
    }

    #[test]
    fn round_trip_every_length_class() {
        let dir = test_dir("round-trip");
        let src = words(5);
        for len in [0, 1, 63, 64, 65, 127, 128, 200, 320] {
            let path = dir.join(format!("bits{len}.npy"));
            write_bits_u8(&path, &src, len).unwrap();
            let got = read_u8_1d(&path).unwrap();
            let want: Vec<u8> = (0..len)
                .map(|i| (src[i / 64] >> (i % 64) & 1) as u8)
                .collect();
            assert_eq!(got, want, "len {len}");
            let raw = fs::read(&path).unwrap();
            assert_eq!((raw.len() - len) % 64, 0, "data offset aligned, len {len}");
        }
        // Nothing but the finished files: no temporaries left.
        assert!(entries(&dir).iter().all(|n| n.ends_with(".npy")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overwrites_an_existing_file() {
        let dir = test_dir("overwrite");
        let path = dir.join("bits.npy");
        write_bits_u8(&path, &[!0], 64).unwrap();
        write_bits_u8(&path, &[0b10], 3).unwrap();
        assert_eq!(read_u8_1d(&path).unwrap(), [0, 1, 0]);
        assert_eq!(entries(&dir), ["bits.npy"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn too_few_words_is_a_usage_error_and_writes_nothing() {
        let dir = test_dir("usage");
        let path = dir.join("bits.npy");
        let err = write_bits_u8(&path, &[0, 0], 129).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = test_dir("fail");
        // The target is an existing directory: rename fails after the data was written.
        let path = dir.join("occupied");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), b"x").unwrap();
        let err = write_bits_u8(&path, &[1], 10).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(entries(&dir), ["occupied"]);
        // A directory that does not exist: creating the temporary file fails.
        let err = write_bits_u8(&dir.join("missing/bits.npy"), &[1], 10).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_rejected() {
        let dir = test_dir("bad");
        let good = {
            let path = dir.join("good.npy");
            write_bits_u8(&path, &[0b101], 3).unwrap();
            fs::read(&path).unwrap()
        };
        // Same-length edits of the header text, so the header length stays right.
        let replace = |from: &str, to: &str| {
            assert_eq!(from.len(), to.len());
            let at = good
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            let mut bytes = good.clone();
            bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
            bytes
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("magic", [b"\x93NUMPZ", &good[6..]].concat()),
            ("version", [&good[..6], &[9], &good[7..]].concat()),
            ("truncated header", good[..40].to_vec()),
            ("dtype", replace("'|u1'", "'<f4'")),
            ("2-D", replace("(3,),", "(1,3)")),
            ("0-D", replace("(3,)", "()  ")),
            ("shape text", replace("(3,)", "(x,)")),
            ("short data", good[..good.len() - 1].to_vec()),
            ("long data", [&good[..], &[0]].concat()),
            (
                "no fortran_order",
                replace("'fortran_order'", "'fortran_xxxxx'"),
            ),
        ];
        for (what, bytes) in cases {
            let path = dir.join("bad.npy");
            fs::write(&path, &bytes).unwrap();
            let err = read_u8_1d(&path).unwrap_err();
            assert!(matches!(err, Error::BadFile { .. }), "{what}: {err}");
        }
        let err = read_u8_1d(&dir.join("missing.npy")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

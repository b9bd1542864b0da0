//! The symbol sequences (`bitrnn::sequence`): texts and `.npy` arrays of every integer dtype
//! read back exactly, in the narrowest type; every malformed input refused with one line
//! naming the file; the held-out split; and `SymbolChunks`' planes against a plain scalar
//! oracle.

mod common;

use bitrnn::Error;
use bitrnn::sequence::{MAX_SYMBOLS, Sequence, SymbolChunks, Symbols};
use bitrnn_kernels::lanes::LANES;
use bitrnn_kernels::simd::groups_for;
use common::TestDir;
use proptest::prelude::*;
use std::path::Path;

/// A `.npy` v1.0 file written by hand: any header text, so that tests can write what numpy
/// never would.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = unpadded.next_multiple_of(64) - unpadded;
    let header_len = u16::try_from(dict.len() + pad + 1).unwrap();
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// Little-endian `<i8` data bytes.
fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `bitrnn::Error`'s one line, checked to be one line and to name `path`.
fn refused(err: &Error, path: &Path) -> String {
    let line = err.to_string();
    assert!(!line.contains('\n'), "one line: {line:?}");
    assert!(
        line.starts_with(&path.display().to_string()),
        "names {}: {line}",
        path.display()
    );
    line
}

/// `seq`'s inputs and targets as `u16`.
fn values(seq: &Sequence) -> (Vec<u16>, Vec<u16>) {
    (seq.inputs().to_vec(), seq.targets().to_vec())
}

// ---------------------------------------------------------------------------------------
// .npy round trips
// ---------------------------------------------------------------------------------------

/// Writes `x` and `y` as `T` with npyz (numpy's own layout) and reads them back.
fn round_trip<T>(dir: &TestDir, name: &str, x: &[u16], y: &[u16]) -> Sequence
where
    T: npyz::AutoSerialize + TryFrom<u16>,
    <T as TryFrom<u16>>::Error: std::fmt::Debug,
{
    let (xp, yp) = (
        dir.path(&format!("{name}_x.npy")),
        dir.path(&format!("{name}_y.npy")),
    );
    let conv = |v: &[u16]| -> Vec<T> { v.iter().map(|&i| T::try_from(i).unwrap()).collect() };
    npyz::to_file_1d(&xp, conv(x)).unwrap();
    npyz::to_file_1d(&yp, conv(y)).unwrap();
    Sequence::from_npy(&xp, &yp, None, None).unwrap()
}

#[test]
fn npy_round_trip_every_integer_dtype() {
    let dir = TestDir::new("dtypes");
    let x: Vec<u16> = (0..1000).map(|i| (i * 7 % 101) as u16).collect();
    let y: Vec<u16> = (0..1000).map(|i| (i * 13 % 10) as u16).collect();
    let seqs = [
        round_trip::<u8>(&dir, "u1", &x, &y),
        round_trip::<u16>(&dir, "u2", &x, &y),
        round_trip::<u32>(&dir, "u4", &x, &y),
        round_trip::<u64>(&dir, "u8", &x, &y),
        round_trip::<i8>(&dir, "i1", &x, &y),
        round_trip::<i16>(&dir, "i2", &x, &y),
        round_trip::<i32>(&dir, "i4", &x, &y),
        round_trip::<i64>(&dir, "i8", &x, &y),
    ];
    for seq in seqs {
        assert_eq!(values(&seq), (x.clone(), y.clone()));
        assert_eq!((seq.len(), seq.vocab(), seq.classes()), (1000, 101, 10));
        assert_eq!(seq.alphabet(), None);
        assert_eq!(seq.symbol_bytes(), 2000, "u8 ids, one byte each");
    }
}

#[test]
fn npy_ids_up_to_65535_are_u16() {
    let dir = TestDir::new("wide");
    let x: Vec<u16> = vec![0, 65535, 256, 255, 7];
    let y: Vec<u16> = vec![1, 0, 300, 2, 299];
    for seq in [
        round_trip::<u16>(&dir, "u2", &x, &y),
        round_trip::<i32>(&dir, "i4", &x, &y),
        round_trip::<i64>(&dir, "i8", &x, &y),
    ] {
        assert_eq!(values(&seq), (x.clone(), y.clone()));
        assert_eq!((seq.vocab(), seq.classes()), (MAX_SYMBOLS, 301));
        assert_eq!((seq.inputs().width(), seq.targets().width()), (2, 2));
        assert_eq!(seq.symbol_bytes(), 4 * 5);
    }
}

#[test]
fn given_vocab_and_classes_fix_the_bounds_and_the_width() {
    let dir = TestDir::new("given");
    let (xp, yp) = (dir.path("x.npy"), dir.path("y.npy"));
    npyz::to_file_1d(&xp, vec![0i64, 3, 1]).unwrap();
    npyz::to_file_1d(&yp, vec![1i64, 0, 1]).unwrap();
    let seq = Sequence::from_npy(&xp, &yp, Some(300), Some(256)).unwrap();
    assert_eq!((seq.vocab(), seq.classes()), (300, 256));
    // 300 symbols need u16; 256 classes fit u8.
    assert_eq!((seq.inputs().width(), seq.targets().width()), (2, 1));
    assert_eq!(seq.symbol_bytes(), 3 * 2 + 3);
    let seq = Sequence::from_npy(&xp, &yp, Some(4), Some(257)).unwrap();
    assert_eq!((seq.inputs().width(), seq.targets().width()), (1, 2));
    // A given vocabulary below an input, a given class count below a target.
    let err = Sequence::from_npy(&xp, &yp, Some(3), None).unwrap_err();
    let line = refused(&err, &xp);
    assert!(
        line.contains("input 3 at index 1") && line.contains("vocabulary size is 3"),
        "{line}"
    );
    let err = Sequence::from_npy(&xp, &yp, None, Some(1)).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    let err = Sequence::from_npy(&xp, &yp, Some(0), None).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    let err = Sequence::from_npy(&xp, &yp, Some(MAX_SYMBOLS + 1), None).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
}

/// `bitrnn generate`'s files (`|u1` 0/1 arrays) read as a sequence of V = C = 2.
#[test]
fn generated_directory_reads_as_bits() {
    let dir = TestDir::new("generated");
    let ds = bitrnn::data::Dataset::generate(1000, (1, 2), 7);
    bitrnn::npy::write_bits_u8(&dir.path("x.npy"), ds.x_words(), 1000).unwrap();
    bitrnn::npy::write_bits_u8(&dir.path("y.npy"), ds.y_words(), 1000).unwrap();
    let seq = Sequence::from_dir(&dir.0, None, None).unwrap();
    assert_eq!((seq.len(), seq.vocab(), seq.classes()), (1000, 2, 2));
    let bit = |words: &[u64], i: usize| (words[i / 64] >> (i % 64) & 1) as u16;
    for i in 0..1000 {
        assert_eq!(seq.inputs().get(i), bit(ds.x_words(), i));
        assert_eq!(seq.targets().get(i), bit(ds.y_words(), i));
    }
}

// ---------------------------------------------------------------------------------------
// Texts
// ---------------------------------------------------------------------------------------

#[test]
fn text_maps_bytes_to_the_sorted_alphabet_and_predicts_the_next() {
    let dir = TestDir::new("text");
    let text = b"hello, world\n";
    let path = dir.write("t.txt", text);
    let seq = Sequence::from_text(&path, false).unwrap();
    assert_eq!(seq.alphabet(), Some(&b"\n ,dehlorw"[..]));
    assert_eq!((seq.len(), seq.vocab(), seq.classes()), (12, 10, 10));
    let alphabet = seq.alphabet().unwrap();
    for i in 0..seq.len() {
        assert_eq!(alphabet[usize::from(seq.inputs().get(i))], text[i]);
        assert_eq!(alphabet[usize::from(seq.targets().get(i))], text[i + 1]);
    }
    // One byte per text byte: inputs and targets are one array.
    assert_eq!(seq.symbol_bytes(), text.len());

    let all = Sequence::from_text(&path, true).unwrap();
    assert_eq!((all.vocab(), all.classes()), (256, 256));
    assert_eq!(all.alphabet().unwrap(), (0..=255).collect::<Vec<u8>>());
    let ids: Vec<u16> = text.iter().map(|&b| u16::from(b)).collect();
    assert_eq!(values(&all), (ids[..12].to_vec(), ids[1..].to_vec()));
    assert_eq!(all.symbol_bytes(), text.len());

    // A two-byte text is the shortest: one position.
    let two = dir.write("two.txt", b"ab");
    let seq = Sequence::from_text(&two, false).unwrap();
    assert_eq!(values(&seq), (vec![0], vec![1]));
}

#[test]
fn text_with_a_models_alphabet() {
    let dir = TestDir::new("alphabet");
    let path = dir.write("t.txt", b"abba cab");
    let seq = Sequence::from_text_with_alphabet(&path, b"cba ").unwrap();
    assert_eq!(seq.alphabet(), Some(&b"cba "[..]));
    assert_eq!(seq.inputs().to_vec(), [2, 1, 1, 2, 3, 0, 2]);
    assert_eq!(seq.targets().to_vec(), [1, 1, 2, 3, 0, 2, 1]);
    // A byte outside it: the message names the byte, escaped, and its offset.
    let bad = dir.write("bad.txt", b"ab\xffa");
    let err = Sequence::from_text_with_alphabet(&bad, b"ab").unwrap_err();
    assert!(matches!(err, Error::BadFile { .. }), "{err}");
    let line = refused(&err, &bad);
    assert!(
        line.contains("'\\xff'") && line.contains("offset 2"),
        "{line}"
    );
    let newline = dir.write("nl.txt", b"ab\n");
    let line = refused(
        &Sequence::from_text_with_alphabet(&newline, b"ab").unwrap_err(),
        &newline,
    );
    assert!(
        line.contains("'\\n'") && line.contains("offset 2"),
        "{line}"
    );
    // Alphabets that are not one.
    for alphabet in [&b""[..], b"a", b"aba"] {
        let err = Sequence::from_text_with_alphabet(&path, alphabet).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
    }
}

/// Memory: one byte of ids per text byte, whatever the alphabet, and a split copies nothing.
#[test]
fn a_text_holds_one_byte_per_byte() {
    let dir = TestDir::new("big");
    let n = 3_000_000;
    let text: Vec<u8> = (0..n).map(|i| b"abcdefgh \n"[i * 7 % 10]).collect();
    let path = dir.write("big.txt", &text);
    for all_bytes in [false, true] {
        let seq = Sequence::from_text(&path, all_bytes).unwrap();
        assert_eq!(seq.len(), n - 1);
        assert_eq!(seq.symbol_bytes(), n);
        let (train, valid) = seq.split_valid(0.1).unwrap();
        assert_eq!(
            (train.symbol_bytes(), valid.symbol_bytes()),
            (n, n),
            "views of the one array"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Each malformed `.npy` as the inputs (with good targets) and as the targets (with good
/// inputs): a `BadFile` naming it, on one line, containing `needle`.
#[test]
fn every_malformed_npy_is_refused_naming_the_file() {
    let dir = TestDir::new("bad-npy");
    let good = dir.write("good.npy", &npy("|u1", false, "(3,)", &[0, 1, 2]));
    let big_header = {
        let mut b = npy("|u1", false, "(3,)", &[0, 1, 2]);
        b[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        b
    };
    let v2_huge_header = {
        let mut b = npy("|u1", false, "(3,)", &[0, 1, 2]);
        b[6] = 2;
        b.splice(8..10, u32::MAX.to_le_bytes());
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty file"),
        ("not npy", b"hello world, not an array".to_vec(), "magic"),
        (
            "version",
            [&b"\x93NUMPY\x07\x00"[..], &[0; 60]].concat(),
            "version 7",
        ),
        ("header past the end", big_header, "truncated header"),
        ("v2 header past the end", v2_huge_header, "truncated header"),
        (
            "header not a dict",
            npy("|u1", false, "(3,)", &[0, 1, 2])[..20].to_vec(),
            "truncated header",
        ),
        ("float", npy("<f4", false, "(3,)", &[0; 12]), "dtype '<f4'"),
        (
            "float64",
            npy("<f8", false, "(3,)", &[0; 24]),
            "dtype '<f8'",
        ),
        ("bool", npy("|b1", false, "(3,)", &[0, 1, 0]), "dtype '|b1'"),
        ("string", npy("|S3", false, "(1,)", b"abc"), "dtype '|S3'"),
        ("2-D", npy("|u1", false, "(3, 1)", &[0, 1, 2]), "2-D"),
        ("0-D", npy("|u1", false, "()", &[0]), "0-D"),
        (
            "nested brackets",
            npy(
                "|u1",
                false,
                &format!("{}3,{}", "[".repeat(40), "]".repeat(40)),
                &[0; 3],
            ),
            "brackets",
        ),
        (
            "huge 2-D",
            npy("|u1", false, "(4294967296, 4294967296)", &[0]),
            "2-D",
        ),
        (
            "huge 3-D",
            npy("<i8", false, "[4294967296, 4294967296, 9]", &[0]),
            "3-D",
        ),
        (
            "fortran",
            npy("|u1", true, "(3,)", &[0, 1, 2]),
            "Fortran order",
        ),
        (
            "big-endian",
            npy(">i4", false, "(3,)", &[0; 12]),
            "big-endian",
        ),
        (
            "truncated",
            npy("<i4", false, "(3,)", &[0; 11]),
            "truncated",
        ),
        (
            "truncated u1",
            npy("|u1", false, "(3,)", &[0, 1]),
            "truncated",
        ),
        (
            "trailing bytes",
            npy("|u1", false, "(3,)", &[0, 1, 2, 3]),
            "after the data",
        ),
        (
            "shape overflows",
            npy("<i8", false, "(4611686018427387904,)", &[0; 8]),
            "truncated",
        ),
        ("empty array", npy("|u1", false, "(0,)", &[]), "empty array"),
        (
            "negative",
            npy("<i8", false, "(3,)", &i64_bytes(&[0, -1, 2])),
            "-1 at index 1",
        ),
        (
            "over 65535",
            npy("<i8", false, "(3,)", &i64_bytes(&[0, 1, 65536])),
            "65536 at index 2",
        ),
        (
            "i64 min",
            npy("<i8", false, "(3,)", &i64_bytes(&[i64::MIN, 1, 2])),
            "at index 0",
        ),
        (
            "missing shape",
            b"\x93NUMPY\x01\x00\x29\x00{'descr': '|u1', 'fortran_order': False}\n".to_vec(),
            "shape",
        ),
    ];
    for (what, bytes, needle) in cases {
        let bad = dir.write("bad.npy", &bytes);
        for (x, y) in [(&bad, &good), (&good, &bad)] {
            let err = Sequence::from_npy(x, y, None, None).unwrap_err();
            assert!(matches!(err, Error::BadFile { .. }), "{what}: {err}");
            let line = refused(&err, &bad);
            assert!(line.contains(needle), "{what}: {line}");
        }
    }
    // A file that is not there, a directory.
    let missing = dir.path("missing.npy");
    let err = Sequence::from_npy(&missing, &good, None, None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    refused(&err, &missing);
    let err = Sequence::from_npy(&good, &dir.0, None, None).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::BadFile { .. }),
        "{err}"
    );
    refused(&err, &dir.0);
}

#[test]
fn arrays_of_different_lengths_and_one_class_are_refused() {
    let dir = TestDir::new("pairs");
    let x = dir.write("x.npy", &npy("|u1", false, "(3,)", &[0, 1, 2]));
    let y = dir.write("y.npy", &npy("|u1", false, "(2,)", &[0, 1]));
    let line = refused(&Sequence::from_npy(&x, &y, None, None).unwrap_err(), &y);
    assert!(
        line.contains("2 targets") && line.contains("3 inputs"),
        "{line}"
    );
    // Every target 0: one class, nothing to predict (a given class count is fine).
    let zeros = dir.write("zeros.npy", &npy("|u1", false, "(3,)", &[0, 0, 0]));
    let line = refused(
        &Sequence::from_npy(&x, &zeros, None, None).unwrap_err(),
        &zeros,
    );
    assert!(line.contains("at least 2 classes"), "{line}");
    assert_eq!(
        Sequence::from_npy(&x, &zeros, None, Some(2))
            .unwrap()
            .classes(),
        2
    );
    // One input symbol is a vocabulary of 1: allowed.
    let seq = Sequence::from_npy(&zeros, &x, None, None).unwrap();
    assert_eq!((seq.vocab(), seq.classes()), (1, 3));
}

#[test]
fn bad_texts_and_directories_are_refused_naming_them() {
    let dir = TestDir::new("bad-text");
    for (what, bytes, needle) in [
        ("empty", &b""[..], "empty file"),
        ("one byte", b"a", "1 byte"),
        ("one distinct byte", b"aaaa", "one distinct byte"),
    ] {
        let path = dir.write("t.txt", bytes);
        let err = Sequence::from_text(&path, false).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{what}: {err}");
        assert!(refused(&err, &path).contains(needle), "{what}: {err}");
    }
    // With all 256 bytes, one distinct byte is a fine text; fewer than 2 bytes is not.
    let path = dir.write("t.txt", b"aaaa");
    assert_eq!(Sequence::from_text(&path, true).unwrap().len(), 3);
    let path = dir.write("t.txt", b"a");
    assert!(Sequence::from_text(&path, true).is_err());
    let missing = dir.path("missing.txt");
    let err = Sequence::from_text(&missing, false).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    refused(&err, &missing);
    // Directories without the two arrays.
    let data = dir.path("data");
    std::fs::create_dir(&data).unwrap();
    let line = refused(&Sequence::from_dir(&data, None, None).unwrap_err(), &data);
    assert!(line.contains("no x.npy"), "{line}");
    std::fs::write(data.join("x.npy"), npy("|u1", false, "(2,)", &[0, 1])).unwrap();
    let line = refused(&Sequence::from_dir(&data, None, None).unwrap_err(), &data);
    assert!(line.contains("no y.npy"), "{line}");
    let nowhere = dir.path("nowhere");
    refused(
        &Sequence::from_dir(&nowhere, None, None).unwrap_err(),
        &nowhere,
    );
    let file = dir.write("file", b"x");
    refused(&Sequence::from_dir(&file, None, None).unwrap_err(), &file);
}

#[test]
fn in_memory_ids_are_checked_too() {
    let seq = Sequence::from_ids(&[0, 5, 2], &[1, 0, 1], None, None).unwrap();
    assert_eq!((seq.vocab(), seq.classes(), seq.symbol_bytes()), (6, 2, 6));
    for (x, y, v, c) in [
        (&[0u16, 1][..], &[0u16][..], None, None),
        (&[], &[], None, None),
        (&[0, 1], &[0, 0], None, None),
        (&[0, 7], &[0, 1], Some(7), None),
        (&[0, 1], &[0, 2], None, Some(2)),
    ] {
        let err = Sequence::from_ids(x, y, v, c).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{x:?} {y:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Symbols, split, windows
// ---------------------------------------------------------------------------------------

#[test]
fn symbols_hold_the_narrowest_type() {
    let small = Symbols::from_u16(&[0, 255, 3]);
    assert_eq!((small.width(), small.len(), small.get(1)), (1, 3, 255));
    let wide = Symbols::from_u16(&[0, 256, 3]);
    assert_eq!((wide.width(), wide.get(1)), (2, 256));
    let mut out = [0u16; 2];
    wide.copy_to(1, &mut out);
    assert_eq!(out, [256, 3]);
    assert!(Symbols::from_u8(vec![]).is_empty());
}

#[test]
fn split_valid_holds_out_the_tail() {
    let x: Vec<u16> = (0..100).collect();
    let y: Vec<u16> = (0..100).map(|i| i % 3).collect();
    let seq = Sequence::from_ids(&x, &y, Some(200), None).unwrap();
    let (train, valid) = seq.split_valid(0.25).unwrap();
    assert_eq!((train.len(), valid.len()), (75, 25));
    assert_eq!(values(&train), (x[..75].to_vec(), y[..75].to_vec()));
    assert_eq!(values(&valid), (x[75..].to_vec(), y[75..].to_vec()));
    for part in [&train, &valid] {
        assert_eq!((part.vocab(), part.classes()), (200, 3));
        assert_eq!(part.symbol_bytes(), seq.symbol_bytes());
    }
    // A split of a split.
    let (a, b) = valid.split_valid(0.2).unwrap();
    assert_eq!(
        (a.inputs().to_vec(), b.inputs().to_vec()),
        (x[75..95].to_vec(), x[95..].to_vec())
    );
    // A text's split keeps its alphabet and its shift.
    let dir = TestDir::new("split");
    let path = dir.write("t.txt", b"abcabcabcab");
    let text = Sequence::from_text(&path, false).unwrap();
    let (train, valid) = text.split_valid(0.3).unwrap();
    assert_eq!((train.len(), valid.len()), (7, 3));
    assert_eq!(valid.alphabet(), Some(&b"abc"[..]));
    assert_eq!(values(&valid), (vec![1, 2, 0], vec![2, 0, 1]));
    // Fractions that hold out nothing or everything, or are not fractions.
    for fraction in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY, 0.001, 0.999] {
        let err = seq.split_valid(fraction).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{fraction}: {err}");
    }
}

#[test]
fn check_windows_counts_streams_or_names_the_data() {
    let seq = Sequence::from_ids(&[0; 100], &[1; 100], None, Some(2)).unwrap();
    let name = Path::new("data/x.npy");
    assert_eq!(seq.check_windows(name, 30, 5).unwrap(), 3);
    assert_eq!(seq.check_windows(name, 100, 100).unwrap(), 1);
    assert_eq!(seq.streams(7), 14);
    assert_eq!(seq.streams(0), 0);
    let err = seq.check_windows(name, 101, 5).unwrap_err();
    assert!(matches!(err, Error::BadFile { .. }), "{err}");
    assert!(refused(&err, name).contains("--batch-size 101"), "{err}");
    for (batch, step) in [(0, 1), (10, 0), (10, 11)] {
        let err = seq.check_windows(name, batch, step).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{batch} {step}: {err}");
    }
}

/// The plain scalar oracle: plane entry `(t, s)` of the window at `t0`.
fn check_window(
    seq: &Sequence,
    chunks: &mut SymbolChunks,
    shape: (usize, usize, usize),
    t0: usize,
) {
    let (streams, stream_len, time_step) = shape;
    let stride = groups_for(streams) * LANES;
    let planes = chunks.window(seq, t0);
    assert_eq!(planes.stride, stride);
    assert_eq!(
        (planes.x.len(), planes.y.len()),
        (time_step * stride, time_step * stride)
    );
    for t in 0..time_step {
        for s in 0..stride {
            let (x, y) = if s < streams {
                let i = s * stream_len + t0 + t;
                (seq.inputs().get(i), seq.targets().get(i))
            } else {
                (0, 0)
            };
            assert_eq!(
                planes.x[t * stride + s],
                x,
                "x t {t} s {s} t0 {t0} {shape:?}"
            );
            assert_eq!(
                planes.y[t * stride + s],
                y,
                "y t {t} s {s} t0 {t0} {shape:?}"
            );
        }
    }
}

/// Every window of an epoch, in order and then backwards (refilling across chunk bounds).
fn check_epoch(seq: &Sequence, streams: usize, stream_len: usize, time_step: usize) {
    let mut chunks = SymbolChunks::new(streams, stream_len, time_step);
    let shape = (streams, stream_len, time_step);
    let starts: Vec<usize> = (0..stream_len / time_step).map(|w| w * time_step).collect();
    for &t0 in starts.iter().chain(starts.iter().rev()) {
        check_window(seq, &mut chunks, shape, t0);
    }
    // Windows that do not start on the window grid (a chunk starting anywhere).
    if stream_len > time_step {
        check_window(seq, &mut chunks, shape, stream_len - time_step);
        check_window(seq, &mut chunks, shape, 1);
    }
}

/// Ids with no period that lines up with the shapes below, up to `bound`.
fn ids(n: usize, bound: usize, salt: usize) -> Vec<u16> {
    (0..n)
        .map(|i| ((i * 2_654_435_761 + salt) % bound) as u16)
        .collect()
}

#[test]
fn windows_match_the_scalar_oracle() {
    // (streams, stream_len, time_step, leftover positions)
    for (streams, stream_len, time_step, extra) in [
        (1, 5, 5, 0),
        (3, 100, 5, 7),
        (LANES, 64, 8, 0),
        (LANES + 1, 130, 25, 3),
        (2 * LANES - 1, 70, 7, 1),
        (37, 200, 1, 0),
        (100, 65, 64, 0),
        (9, 300, 100, 5),
        (250, 40, 3, 0),
    ] {
        let n = streams * stream_len + extra;
        for (vocab, classes) in [(7, 3), (300, 2), (5, 70_000.min(MAX_SYMBOLS))] {
            let seq = Sequence::from_ids(
                &ids(n, vocab, 1),
                &ids(n, classes, 5),
                Some(vocab),
                Some(classes),
            )
            .unwrap();
            check_epoch(&seq, streams, stream_len, time_step);
        }
    }
    // A text (the shifted storage) and its held-out tail (a view with an offset).
    let dir = TestDir::new("windows");
    let text: Vec<u8> = (0..5000)
        .map(|i| b"the quick brown fox\n"[i * 7 % 20])
        .collect();
    let seq = Sequence::from_text(&dir.write("t.txt", &text), false).unwrap();
    check_epoch(&seq, 19, 200, 25);
    let (_, valid) = seq.split_valid(0.4).unwrap();
    check_epoch(&valid, LANES + 3, 100, 10);
}

#[test]
#[should_panic(expected = "past the stream length")]
fn a_window_past_the_stream_panics() {
    let seq = Sequence::from_ids(&[0; 100], &[1; 100], None, Some(2)).unwrap();
    SymbolChunks::new(10, 10, 5).window(&seq, 6);
}

#[test]
#[should_panic(expected = "streams of")]
fn streams_past_the_sequence_panic() {
    let seq = Sequence::from_ids(&[0; 100], &[1; 100], None, Some(2)).unwrap();
    SymbolChunks::new(11, 10, 5).window(&seq, 0);
}

proptest! {
    /// Random sequences and shapes: every window's planes match the oracle.
    #[test]
    fn random_windows_match_the_oracle(
        streams in 1usize..80,
        stream_len in 1usize..120,
        time_frac in 0.0f64..1.0,
        extra in 0usize..50,
        wide in any::<bool>(),
        salt in any::<u16>(),
    ) {
        let time_step = 1 + ((stream_len as f64 * time_frac) as usize).min(stream_len - 1);
        let n = streams * stream_len + extra;
        let vocab = if wide { 1000 } else { 40 };
        let seq = Sequence::from_ids(
            &ids(n, vocab, usize::from(salt)),
            &ids(n, 9, 3),
            Some(vocab),
            Some(9),
        ).unwrap();
        check_epoch(&seq, streams, stream_len, time_step);
    }

    /// Random `.npy` arrays (values and dtype) read back exactly, or are refused when a
    /// value is out of range.
    #[test]
    fn random_npy_arrays_round_trip(
        x in prop::collection::vec(-3i64..70_000, 1..300),
        which in 0usize..4,
    ) {
        let dir = TestDir::new(&format!("prop-npy-{which}"));
        let y: Vec<i64> = x.iter().map(|v| v.rem_euclid(5)).collect();
        let (xp, yp) = (dir.path("x.npy"), dir.path("y.npy"));
        npyz::to_file_1d(&yp, y.iter().map(|&v| v as u8)).unwrap();
        match which {
            0 => npyz::to_file_1d(&xp, x.iter().copied()).unwrap(),
            1 => npyz::to_file_1d(&xp, x.iter().map(|&v| v as i32)).unwrap(),
            2 => npyz::to_file_1d(&xp, x.iter().map(|&v| v as u64)).unwrap(),
            _ => npyz::to_file_1d(&xp, x.iter().map(|&v| v as i16)).unwrap(),
        }
        // What the file holds after the cast to its dtype.
        let held: Vec<i64> = match which {
            0 => x.clone(),
            1 => x.iter().map(|&v| i64::from(v as i32)).collect(),
            2 => x.iter().map(|&v| v as u64 as i64).collect(),
            _ => x.iter().map(|&v| i64::from(v as i16)).collect(),
        };
        let ok = held.iter().all(|&v| (0..65_536).contains(&v)) && y.iter().any(|&v| v > 0);
        match Sequence::from_npy(&xp, &yp, None, None) {
            Ok(seq) => {
                prop_assert!(ok);
                let want: Vec<u16> = held.iter().map(|&v| v as u16).collect();
                prop_assert_eq!(seq.inputs().to_vec(), want);
                let max = held.iter().copied().max().unwrap() as usize;
                prop_assert_eq!(seq.vocab(), max + 1);
                prop_assert_eq!(seq.inputs().width(), if max < 256 { 1 } else { 2 });
            }
            Err(e) => {
                prop_assert!(!ok, "{}", e);
                prop_assert!(matches!(e, Error::BadFile { .. }), "{}", e);
            }
        }
    }
}

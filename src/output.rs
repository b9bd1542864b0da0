//! Output files: every file bitrnn writes appears whole or not at all.
//!
//! A run can stop at any moment (Ctrl-C, a full disk, a crash), and whoever reads `--out`
//! (a person, a plotting script, the next run) must never find a half-written CSV, PNG or
//! checkpoint. So each file is written to a hidden temporary sibling in the same directory
//! (the same filesystem, which is what makes `rename(2)` atomic), flushed, `fsync`ed and only
//! then renamed over its final name. On any error the temporary file is removed and the old
//! file, if there was one, is left as it was.
//!
//! Use [`write_atomic`] for anything written through `std::io::Write`, [`write_atomic_bytes`]
//! for a ready buffer, and [`ensure_dir`] once on the output directory before the run starts,
//! so that a bad `--out` fails before any training time is spent.
//!
//! The checks of the paths the flags name ([`check_out_dir`], [`check_output_file`],
//! [`check_input_file`]) live here too, next to the code that writes them: every command
//! runs them before any work, and [`shown`] writes a path into a one-line message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Distinguishes temporary files of one process: the pid alone is not enough when two
/// threads (or two tests) write files at the same time.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary path next to `path`: `DIR/.NAME.tmp.PID.N` followed by `extension`
/// (e.g. `".png"`, for writers that pick the format from the file name; `""` otherwise).
/// The leading dot keeps it out of `ls` and globs like `*.csv` while it exists.
pub(crate) fn temp_sibling(path: &Path, extension: &str) -> Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        ));
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    temp_name.push(format!(".tmp.{}.{n}{extension}", std::process::id()));
    Ok(path.with_file_name(temp_name))
}

/// Makes a rename inside `path`'s directory durable. Best effort: some filesystems refuse to
/// `fsync` a directory, and the file itself is already complete on disk either way.
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Finishes a temporary file that something else wrote: `fsync`s `temp` and renames it over
/// `path`. On error `temp` is removed. For writers that insist on creating the file
/// themselves (the PNG encoder); everything else should use [`write_atomic`].
pub(crate) fn commit_temp(temp: &Path, path: &Path) -> Result<()> {
    let result = File::open(temp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(temp);
        return Err(Error::io(path, e));
    }
    sync_parent_dir(path);
    Ok(())
}

/// Writes `path` atomically: `f` writes into a buffered temporary file in the same directory,
/// which is then flushed, `fsync`ed and renamed over `path`.
///
/// Readers see either the old file or the complete new one. If `f` or any step fails, the
/// temporary file is removed and the error is reported against `path`.
///
/// # Errors
/// [`Error::Io`] naming `path`, with the error of `f` or of the failing file operation.
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let temp = temp_sibling(path, "")?;
    // `create_new` refuses to follow or clobber anything already at `temp`: if that fails the
    // file there is not ours, so it must not be removed below.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| Error::io(path, e))?;
    let result = (|| {
        let mut writer = BufWriter::new(file);
        f(&mut writer)?;
        let file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    sync_parent_dir(path);
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`write_atomic`]).
///
/// # Errors
/// [`Error::Io`] naming `path`.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes the per-step training loss as CSV, atomically: a header `step,epoch,loss`, then
/// one row per training step (one window of `time_step` steps over all streams).
///
/// `step` counts from 0 over the whole run and `epoch = step / windows_per_epoch`, also from
/// 0. The loss is written with Rust's shortest round-trip formatting of `f32`, so parsing a
/// field back gives the identical `f32`; a non-finite loss is written as `NaN`, `inf` or
/// `-inf`.
///
/// # Errors
/// [`Error::Usage`] if `windows_per_epoch` is 0; [`Error::Io`] if the file cannot be written.
pub fn write_loss_csv(path: &Path, losses: &[f32], windows_per_epoch: usize) -> Result<()> {
    write_loss_csv_held_out(path, losses, windows_per_epoch, None)
}

/// [`write_loss_csv`] with the held-out loss and accuracy (`--valid`): two more columns,
/// `valid_loss,valid_accuracy`, filled on the last step of each epoch that was scored
/// (`(epochs trained, loss, accuracy)`), empty on the other steps.
///
/// # Errors
/// As [`write_loss_csv`].
pub fn write_loss_csv_held_out(
    path: &Path,
    losses: &[f32],
    windows_per_epoch: usize,
    held_out: Option<&[(usize, f32, f32)]>,
) -> Result<()> {
    if windows_per_epoch == 0 {
        return Err(Error::Usage(format!(
            "{}: windows_per_epoch must be at least 1, got 0",
            path.display()
        )));
    }
    write_atomic(path, |w| {
        let Some(held_out) = held_out else {
            w.write_all(b"step,epoch,loss\n")?;
            for (step, loss) in losses.iter().enumerate() {
                writeln!(w, "{step},{},{loss}", step / windows_per_epoch)?;
            }
            return Ok(());
        };
        w.write_all(b"step,epoch,loss,valid_loss,valid_accuracy\n")?;
        let mut scored = held_out.iter().peekable();
        for (step, loss) in losses.iter().enumerate() {
            write!(w, "{step},{},{loss}", step / windows_per_epoch)?;
            match scored.peek() {
                Some(&&(e, l, a)) if e * windows_per_epoch == step + 1 => {
                    scored.next();
                    writeln!(w, ",{l},{a}")?;
                }
                _ => writeln!(w, ",,")?,
            }
        }
        Ok(())
    })
}

/// Creates the output directory `path` (and its parents) unless it already exists.
///
/// # Errors
/// [`Error::Usage`] if `path` exists and is not a directory (a mistyped `--out` pointing at a
/// file must fail before training, not after); [`Error::Io`] if it cannot be created.
pub fn ensure_dir(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "--out {}: exists and is not a directory",
            path.display()
        ))),
        Err(_) => fs::create_dir_all(path).map_err(|e| Error::io(path, e)),
    }
}

/// Checks that the input file `path`, given as `flag`, exists and is a file: a missing or
/// mistyped path is a usage error (exit code 2), like a bad value. What is inside is the
/// reader's to check.
///
/// # Errors
/// [`Error::Usage`] naming `flag` and the path.
pub fn check_input_file(flag: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "{flag} {}: is not a file (a directory?); give a checkpoint file",
            shown(path)
        ))),
        Err(e) => Err(Error::Usage(format!(
            "{flag} {}: cannot be read: {e}",
            shown(path)
        ))),
    }
}

/// Checks that the output file `path`, given as `flag`, can be written: a file name (ending in
/// `.extension` when one is required), in an existing directory or in `created_dir` (the
/// `--out` directory, created before anything is written), not itself a directory. Checked
/// before any work, so that a mistyped path fails before the training time is spent.
///
/// # Errors
/// [`Error::Usage`] naming `flag` and the path.
pub fn check_output_file(
    flag: &str,
    path: &Path,
    extension: Option<&str>,
    created_dir: Option<&Path>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let named = extension.is_none_or(|extension| {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case(extension))
    });
    if path.file_name().is_none() || !named {
        return Err(Error::Usage(format!(
            "{flag} {}: must be a file name{}",
            shown(path),
            extension.map_or(String::new(), |e| format!(" ending in .{e}"))
        )));
    }
    if !(dir.is_dir() || created_dir == Some(dir)) {
        return Err(Error::Usage(format!(
            "{flag} {}: the directory {} does not exist",
            shown(path),
            shown(dir)
        )));
    }
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: is a directory",
            shown(path)
        )));
    }
    Ok(())
}

/// Checks that `path`, given as `flag`, is a directory or can become one: it is not empty,
/// and it, or else its nearest existing ancestor, is a directory. Checked before any work so
/// that a mistyped `--out` fails at once, with exit code 2, rather than after training. Whether
/// the directory is writable is left to the first write.
///
/// # Errors
/// [`Error::Usage`] naming `flag` and the path.
pub fn check_out_dir(flag: &str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::Usage(format!(
            "{flag} '': must name a directory (`.` for the current one)"
        )));
    }
    for p in path.ancestors() {
        if p.as_os_str().is_empty() {
            // The relative path's base: the current directory.
            break;
        }
        // Not found (or a component is a file): look further up.
        let Ok(meta) = std::fs::metadata(p) else {
            continue;
        };
        if meta.is_dir() {
            return Ok(());
        }
        return Err(Error::Usage(if p == path {
            format!(
                "{flag} {}: exists and is not a directory; give a directory (created if missing)",
                shown(path)
            )
        } else {
            format!(
                "{flag} {}: cannot be created as a directory: {} is a file",
                shown(path),
                shown(p)
            )
        }));
    }
    Ok(())
}

/// `path` for a one-line message: as [`Path::display`], with control characters (a newline
/// in a file name, a terminal escape) written as Rust escapes (`\n`, `\u{1b}`), so that the
/// message stays one line and harmless on a terminal.
#[must_use]
pub fn shown(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

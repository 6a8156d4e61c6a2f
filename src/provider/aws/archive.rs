//! Deterministic zip archives of Lambda sources.
//!
//! The same files always give the same bytes (sorted entries, a fixed 1980
//! timestamp, permissions reduced to 0644 / 0755, stored without
//! compression), so the archive's SHA-256 is a stable fingerprint of the
//! code: it is what Lambda reports as `CodeSha256`, which lets a plan see
//! that unchanged code needs no update.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A zip archive in memory and its Lambda-style hash.
#[derive(Debug, Clone)]
pub struct Archive {
    pub bytes: Vec<u8>,
    /// Base64 of the SHA-256 of `bytes` (Lambda's `CodeSha256` format).
    pub sha256: String,
}

/// Zips `path` (a file: one entry under its file name; a folder: every
/// file below it, by relative path).
pub fn zip_path(path: &Path) -> Result<Archive, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if meta.is_dir() {
        collect(path, path, &mut files)?;
        if files.is_empty() {
            return Err(format!("{} holds no files", path.display()));
        }
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} has no file name", path.display()))?;
        files.push((name, path.to_path_buf()));
    }
    files.sort();
    let mut entries = Vec::with_capacity(files.len());
    for (name, file) in files {
        let data =
            std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        entries.push(Entry {
            name,
            executable: is_executable(&file),
            data,
        });
    }
    let bytes = write_zip(&entries)?;
    let sha256 = aws_smithy_types::base64::encode(Sha256::digest(&bytes));
    Ok(Archive { bytes, sha256 })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in read {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            collect(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, path));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

struct Entry {
    name: String,
    executable: bool,
    data: Vec<u8>,
}

/// 1980-01-01 00:00 in MS-DOS date format; the time field is 0.
const DOS_DATE: u16 = (1 << 5) | 1;
/// Bit 11: names are UTF-8.
const FLAGS: u16 = 0x0800;

fn u32_of(n: usize, what: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("archive too large ({what})"))
}

fn write_zip(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = u32_of(out.len(), "offset")?;
        let size = u32_of(entry.data.len(), "file size")?;
        let name_len = u16::try_from(entry.name.len())
            .map_err(|_| format!("path too long: {}", entry.name))?;
        let crc = crc32fast::hash(&entry.data);
        // Local file header.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&FLAGS.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&0u16.to_le_bytes()); // time
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(entry.name.as_bytes());
        out.extend_from_slice(&entry.data);
        // Central directory record.
        let mode: u32 = if entry.executable {
            0o100_755
        } else {
            0o100_644
        };
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&FLAGS.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DOS_DATE.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attrs
        central.extend_from_slice(&(mode << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(entry.name.as_bytes());
    }
    let count = u16::try_from(entries.len()).map_err(|_| "too many files".to_string())?;
    let cd_offset = u32_of(out.len(), "offset")?;
    let cd_size = u32_of(central.len(), "directory")?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_folder_same_hash_changed_file_different_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        std::fs::write(
            dir.path().join("index.py"),
            "def handler(e, c):\n    return 1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("lib/util.py"), "X = 1\n").unwrap();
        let a = zip_path(dir.path()).unwrap();
        let b = zip_path(dir.path()).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.sha256, b.sha256);
        std::fs::write(dir.path().join("lib/util.py"), "X = 2\n").unwrap();
        let c = zip_path(dir.path()).unwrap();
        assert_ne!(a.sha256, c.sha256);
        // A real unzip tool reads it back (when one is installed).
        let out = dir.path().join("out.zip");
        std::fs::write(&out, &c.bytes).unwrap();
        if let Ok(o) = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(','.join(z.namelist())); print(z.read('lib/util.py').decode())"])
            .arg(&out)
            .output()
        {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(text.starts_with("index.py,lib/util.py"), "{text}");
            assert!(text.contains("X = 2"), "{text}");
        }
    }

    #[test]
    fn single_file_zips_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.py");
        std::fs::write(&file, "print(1)\n").unwrap();
        let a = zip_path(&file).unwrap();
        assert!(a.bytes.windows(7).any(|w| w == b"main.py"));
        assert!(zip_path(&dir.path().join("missing")).is_err());
    }
}

//! The store's directory: permissions, syncing, deleting, the writer's lock, and the commit
//! (a new manifest written aside, synced and renamed over the old one).

use super::*;

/// Makes `p` (if missing) and sets it to 0700; returns the mode it had when it existed with
/// another one.
pub(crate) fn private_dir(p: &Path) -> Result<Option<u32>, Error> {
    let was = fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| m.permissions().mode() & 0o7777);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p).at(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).at(p)?;
    Ok(was.filter(|&m| m != 0o700))
}

/// Makes a directory and its files private (0700/0600), and syncs the files.
pub(crate) fn set_private(dir: &Path) -> Result<(), Error> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).at(dir)?;
    for e in fs::read_dir(dir).at(dir)?.flatten() {
        let p = e.path();
        if p.is_file() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).at(&p)?;
            File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
        }
    }
    Ok(())
}

/// Removes a file or a directory (a segment's index), if it can: what is left is removed by the
/// next writer (`remove_orphans`). Returns the bytes freed, when it was removed.
pub(crate) fn remove_path(p: &Path) -> Option<u64> {
    let bytes = disk_bytes(p);
    if !p.is_dir() {
        return fs::remove_file(p).ok().map(|()| bytes);
    }
    // An index is renamed away first: a reader opening it takes a lock file in it, which would
    // make the removal fail (directory not empty) if it came between the listing and the rmdir.
    let name = p.file_name()?.to_string_lossy();
    let gone = p.with_file_name(format!(".{name}.deleted"));
    fs::rename(p, &gone).ok()?;
    (0..3).any(|_| fs::remove_dir_all(&gone).is_ok()).then_some(bytes)
}

/// Bytes of a file, or of the files under a directory.
pub(crate) fn disk_bytes(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::read_dir(p).map_or(0, |d| d.flatten().map(|e| disk_bytes(&e.path())).sum()),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

pub(crate) fn sync_dir(p: &Path) -> Result<(), Error> {
    File::open(p).and_then(|d| d.sync_all()).at(p)
}

/// Takes the writer lock (an exclusive `flock` on `LOCK`, released when the process ends, however
/// it ends).
pub(crate) fn lock(dir: &Path) -> Result<std::sync::Arc<File>, Error> {
    let path = dir.join(LOCK);
    let mut f =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).at(&path)?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0).at(&path)?;
            let _ = writeln!(f, "{}", std::process::id());
            Ok(std::sync::Arc::new(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut pid));
            let pid = pid.trim();
            let holder = if pid.is_empty() { String::new() } else { format!(" (process {pid})") };
            Err(Error::Locked { path: dir.to_path_buf(), holder })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io { path, error: e }),
    }
}

impl Store {
    pub(crate) fn remove_orphans(&self) -> Result<(), Error> {
        let seg_dir = self.dir.join(SEGMENTS);
        let live: std::collections::HashSet<&str> = self
            .manifest
            .segments
            .iter()
            .flat_map(|s| std::iter::once(s.file.as_str()).chain(s.index.as_deref()))
            .collect();
        for e in fs::read_dir(&seg_dir).at(&seg_dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !live.contains(name.as_str()) {
                let _ = remove_path(&e.path());
            }
        }
        for e in fs::read_dir(&self.dir).at(&self.dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".MANIFEST") {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Writes `m` as the new manifest, atomically.
    pub(crate) fn commit(&mut self, mut m: Manifest) -> Result<(), Error> {
        if self.lock.is_none() {
            // A handle opened for reading: writing through it would race the real writer.
            return Err(Error::ReadOnly(self.dir.clone()));
        }
        m.generation = self.manifest.generation + 1;
        let tmp = self.dir.join(format!(".MANIFEST.{}.tmp", m.generation));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).at(&tmp)?;
        let text = verify::seal_manifest(&mut m);
        f.write_all(&text).and_then(|()| f.sync_all()).at(&tmp)?;
        drop(f);
        let path = self.dir.join(MANIFEST);
        fs::rename(&tmp, &path).at(&path)?;
        sync_dir(&self.dir)?;
        self.manifest = m;
        Ok(())
    }
}

//! Rewriting the store: `compact` (segments merged) and `prune` (old events dropped), each
//! deleting the files it replaced right after its commit.

use super::*;

/// What `compact` or `prune` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub segments_before: usize,
    pub segments_after: usize,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Segments replaced or dropped whose files were deleted after the commit.
    pub segments_deleted: usize,
    /// Bytes on disk those files (and their indexes) held.
    pub bytes_freed: u64,
    /// Bytes of the segment written in their place (with its index; 0 when none was).
    pub bytes_written: u64,
}

impl Rewrite {
    fn same(m: &Manifest) -> Rewrite {
        Rewrite {
            segments_before: m.segments.len(),
            segments_after: m.segments.len(),
            rows_before: m.rows(),
            rows_after: m.rows(),
            segments_deleted: 0,
            bytes_freed: 0,
            bytes_written: 0,
        }
    }
}

impl Store {
    /// Merges every live segment into one (after `--follow` or many small ingests): fewer files to
    /// open per query; a single segment is rewritten too when its index is not this kaq's
    /// (another index version or Unicode tables, or none: it narrows less, see [`index::Holds`]).
    /// Committed like an ingest; the old files are deleted right after the commit (a query that
    /// read the old manifest starts again on the new one, [`Store::run`]).
    pub fn compact(&mut self) -> Result<Rewrite, Error> {
        let all: Vec<u64> = self.manifest.segments.iter().map(|s| s.id).collect();
        let current = |s: &Segment| {
            s.index.is_some()
                && s.index_version == Some(index::VERSION)
                && s.index_unicode.as_deref() == Some(index::unicode())
        };
        if all.len() < 2 && self.manifest.segments.iter().all(current) {
            return Ok(Rewrite::same(&self.manifest));
        }
        self.rewrite(&all, &[], None)
    }

    /// Drops the events whose `time` is before `cutoff_us` (events without a time are kept):
    /// segments entirely older are dropped, segments that straddle the cutoff are rewritten.
    pub fn prune_before(&mut self, cutoff_us: i64) -> Result<Rewrite, Error> {
        let mut drop = Vec::new();
        let mut cut = Vec::new();
        for s in &self.manifest.segments {
            match (s.min_time, s.max_time) {
                (Some(_), Some(max)) if max < cutoff_us && s.rows == s.rows_with_time() => drop.push(s.id),
                (Some(min), Some(_)) if min < cutoff_us => cut.push(s.id),
                _ => {}
            }
        }
        if drop.is_empty() && cut.is_empty() {
            return Ok(Rewrite::same(&self.manifest));
        }
        self.rewrite(&cut, &drop, Some(cutoff_us))
    }

    /// Replaces the segments `rewrite` by one new segment holding their rows (those at or after
    /// `cutoff` when given) and removes the segments `drop`, in one commit.
    pub(crate) fn rewrite(&mut self, rewrite: &[u64], drop: &[u64], cutoff: Option<i64>) -> Result<Rewrite, Error> {
        if self.lock.is_none() {
            *self = Store::open_writer(&self.dir)?;
        }
        let before = Rewrite::same(&self.manifest);
        // Records may be dropped (prune): an ingest after it may add them again.
        self.dedup.lock().expect("unpoisoned").forget();
        let old: Vec<Segment> = self
            .manifest
            .segments
            .iter()
            .filter(|s| rewrite.contains(&s.id) || drop.contains(&s.id))
            .cloned()
            .collect();
        let mut seg = self.start_plain_segment()?;
        let time_col = kaq_columnar::column_index("time").expect("time column");
        for s in old.iter().filter(|s| rewrite.contains(&s.id)) {
            let path = self.dir.join(SEGMENTS).join(&s.file);
            // Damage is not copied into the new segment.
            self.check_whole(std::slice::from_ref(&path))?;
            let named = |e: kaq_columnar::Error| segment_error(&path, e);
            for batch in kaq_columnar::read::open(&path, 8192).map_err(named)? {
                let mut batch = batch.map_err(|e| named(e.into()))?;
                if let Some(cut) = cutoff {
                    let t = batch.column(time_col).as_any().downcast_ref::<TimestampMicrosecondArray>();
                    if let Some(t) = t {
                        let keep: arrow_array::BooleanArray =
                            (0..t.len()).map(|i| Some(t.is_null(i) || t.value(i) >= cut)).collect();
                        batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                            .map_err(kaq_columnar::Error::from)?;
                    }
                }
                if batch.num_rows() > 0 {
                    seg.add(batch)?;
                }
            }
        }
        let new_id = (seg.rows > 0).then_some(seg.id);
        let mut m = self.manifest.clone();
        let at = m.segments.iter().position(|s| rewrite.contains(&s.id) || drop.contains(&s.id));
        m.segments.retain(|s| !rewrite.contains(&s.id) && !drop.contains(&s.id));
        for src in &mut m.sources {
            if src.segment.is_some_and(|id| rewrite.contains(&id) || drop.contains(&id)) {
                src.segment = if src.segment.is_some_and(|id| rewrite.contains(&id)) { new_id } else { None };
            }
        }
        // The new segment takes the place of the first one it replaces (order of reading).
        let pos = at.unwrap_or(m.segments.len()).min(m.segments.len());
        let segment_at = pos;
        self.close_segment_at(seg, m, segment_at)?;
        // Retention means deletion: the files the manifest no longer names go now. A query that
        // read the old manifest and opened them reads on (an unlinked file stays readable through
        // its open handles); one that had not opened them yet finds one gone and starts again on
        // the new manifest (`Store::run`). What cannot be removed now, the next writer removes.
        let seg_dir = self.dir.join(SEGMENTS);
        let (mut segments_deleted, mut bytes_freed) = (0, 0);
        for s in &old {
            if let Some(n) = remove_path(&seg_dir.join(&s.file)) {
                segments_deleted += 1;
                bytes_freed += n;
            }
            if let Some(i) = &s.index {
                bytes_freed += remove_path(&seg_dir.join(i)).unwrap_or(0);
            }
        }
        let bytes_written = self
            .manifest
            .segments
            .iter()
            .filter(|s| Some(s.id) == new_id)
            .map(|s| s.bytes + s.index.as_ref().map_or(0, |i| disk_bytes(&seg_dir.join(i))))
            .sum();
        Ok(Rewrite {
            segments_before: before.segments_after,
            rows_before: before.rows_after,
            segments_deleted,
            bytes_freed,
            bytes_written,
            ..Rewrite::same(&self.manifest)
        })
    }
}

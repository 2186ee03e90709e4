//! The commit log: the embedded store's durability point.
//!
//! Each batch of writes is one record, appended to the log and made durable
//! with one `fdatasync` before SQLite commits it (without syncing) and
//! before any job of the batch is answered. A record holds what the batch
//! changed, as the calls that change the database (`super::redo`), so the
//! database can be brought back to every acknowledged write by replaying
//! the log: SQLite, with `synchronous = NORMAL`, may lose its last commits
//! to a power cut, never its consistency.
//!
//! Layout: a directory of segments, `<first lsn, 20 digits>.log`, each
//! starting with [`MAGIC`], then records:
//!
//! ```text
//! length u32 LE | crc32 u32 LE (of the lsn bytes and the payload) | lsn u64 LE | payload
//! ```
//!
//! Records are numbered from 1 without gaps (the lsn, log sequence number).
//! A segment is closed when it passes the segment size and the next one
//! starts at the next lsn. On open, records the database has not applied
//! are replayed; a torn last record (a crash in the middle of an append) is
//! cut off; any other damage (a bad record followed by more data, a missing
//! record) refuses to open rather than skip acknowledged writes. Closed
//! segments are removed once a complete checkpoint has made every record
//! in them durable in the database file ([`Trimmer`]).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::faults::{crashpoint, failpoint, failpoint_with};

/// The first bytes of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"CTXLOG1\n";

/// Bytes before a record's payload: length, checksum, lsn.
pub(crate) const HEADER: usize = 16;

/// Largest record payload: a batch with more is refused, and on replay a
/// length above it is damage, not a record.
const MAX_RECORD: u32 = 1 << 30;

/// A record appended and synced: where it is, to take it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) lsn: u64,
    /// Its offset in the current segment.
    start: u64,
}

/// The open log, owned by the writer thread.
pub(crate) struct CommitLog {
    dir: PathBuf,
    /// The current segment, written at `len`.
    file: File,
    /// The lsn of the current segment's first record (its name).
    current_first: u64,
    /// Bytes in the current segment.
    len: u64,
    /// The lsn the next record gets.
    next: u64,
    /// Whether appends are synced (`Durability::Full`).
    sync: bool,
    segment_bytes: u64,
    /// Set when the log could not be put back in a known state (a failed
    /// append that could not be cut off): every later append fails.
    broken: Option<String>,
    /// The record being built, kept to reuse its memory.
    buf: Vec<u8>,
}

/// Maps an I/O error on the log to the store's error: a full disk is
/// `Full`, anything else a backend failure.
fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    let message = format!("commit log: {what} {}: {e}", path.display());
    if e.kind() == ErrorKind::StorageFull || e.kind() == ErrorKind::QuotaExceeded {
        StoreError::Full(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Damage that is not a torn tail.
fn corrupt(path: &Path, offset: u64, what: &str) -> StoreError {
    StoreError::Backend(format!(
        "commit log {} is damaged at byte {offset} ({what}); the store will not open rather than lose \
         acknowledged writes: restore the data directory from a backup",
        path.display()
    ))
}

/// The path of the segment starting at `first`.
fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// The segments in `dir`, by first lsn.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let read = std::fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, e))?;
    for item in read {
        let item = item.map_err(|e| io_error("cannot list", dir, e))?;
        let name = item.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        out.push((first, item.path()));
    }
    out.sort();
    Ok(out)
}

/// Makes the directory's entries (a file created or removed) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("cannot sync", dir, e))
}

fn checksum(lsn: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// What reading one segment found.
struct Scan {
    /// The lsn after its last whole record.
    next: u64,
    /// Where its whole records end.
    end: u64,
    /// Whether bytes after `end` were a torn record (to cut off).
    torn: bool,
}

/// Reads the segment at `path`, whose first record is `first`, passing the
/// records after `applied` to `apply`. `last`: whether it is the newest
/// segment, the only one that may end in a torn record.
fn scan(
    path: &Path,
    first: u64,
    applied: u64,
    last: bool,
    apply: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_error("cannot read", path, e))?;
    if bytes.len() < MAGIC.len() && last && MAGIC.starts_with(&bytes) {
        // Created, and cut off before its header was whole: empty.
        return Ok(Scan { next: first, end: 0, torn: true });
    }
    if !bytes.starts_with(MAGIC) {
        return Err(corrupt(path, 0, "not a ctxmesh commit log segment"));
    }
    let mut at = MAGIC.len();
    let mut next = first;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let whole = rest.len() >= HEADER && {
            let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
            let lsn = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
            len <= MAX_RECORD
                && rest.len() >= HEADER + len as usize
                && checksum(lsn, &rest[HEADER..HEADER + len as usize]) == crc
                && {
                    if lsn != next {
                        return Err(corrupt(path, at as u64, &format!("record {lsn} where {next} was expected")));
                    }
                    if lsn > applied {
                        apply(lsn, &rest[HEADER..HEADER + len as usize])?;
                        failpoint("log::replay::mid")?;
                    }
                    next += 1;
                    at += HEADER + len as usize;
                    true
                }
        };
        if !whole {
            // A torn tail: the last record of the last segment, cut short
            // (it claims more bytes than follow) or never written (zeros).
            let claims = if rest.len() >= 4 {
                HEADER + u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize
            } else {
                usize::MAX
            };
            let torn = last && (claims > rest.len() || rest.iter().all(|b| *b == 0));
            if !torn {
                return Err(corrupt(path, at as u64, "a record that does not check out, with data after it"));
            }
            return Ok(Scan { next, end: at as u64, torn: true });
        }
    }
    Ok(Scan { next, end: at as u64, torn: false })
}

impl CommitLog {
    /// Opens the log in `dir` (creating it), passing every whole record
    /// after `applied` (the last lsn the database holds) to `apply`, in
    /// order, and cutting off a torn last record.
    pub(crate) fn open(
        dir: &Path,
        applied: u64,
        sync: bool,
        segment_bytes: u64,
        mut apply: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<CommitLog> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
        let found = segments(dir)?;
        // The lsn after the last record read.
        let mut next = None::<u64>;
        let mut tail = None::<(u64, PathBuf, u64)>;
        for (i, (first, path)) in found.iter().enumerate() {
            if let Some(expected) = next {
                if *first < expected {
                    return Err(corrupt(path, 0, &format!("it starts at record {first}, before {expected}")));
                }
                // A gap is only allowed among records the database holds
                // (a removal of old segments cut short by a crash).
                if *first != expected && *first > applied + 1 {
                    return Err(corrupt(path, 0, &format!("records {expected} to {} are missing", first - 1)));
                }
            } else if *first > applied + 1 {
                return Err(corrupt(path, 0, &format!("records {} to {} are missing", applied + 1, first - 1)));
            }
            let last = i + 1 == found.len();
            let scanned = scan(path, *first, applied, last, &mut apply)?;
            if scanned.torn {
                tracing::warn!(segment = %path.display(), at = scanned.end, "cut a torn record off the commit log");
                let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error("cannot open", path, e))?;
                if scanned.end < MAGIC.len() as u64 {
                    file.set_len(0).map_err(|e| io_error("cannot cut", path, e))?;
                    file.write_all_at(MAGIC, 0).map_err(|e| io_error("cannot write", path, e))?;
                } else {
                    file.set_len(scanned.end).map_err(|e| io_error("cannot cut", path, e))?;
                }
                file.sync_all().map_err(|e| io_error("cannot sync", path, e))?;
            }
            next = Some(scanned.next);
            tail = Some((*first, path.clone(), scanned.end.max(MAGIC.len() as u64)));
        }
        let mut log = match (next, tail) {
            // Continue the last segment, unless the database is ahead of it
            // (its records were lost with an unsynced log: `Relaxed`).
            (Some(next), Some((current_first, path, len))) if next > applied => {
                let file = OpenOptions::new().write(true).open(&path).map_err(|e| io_error("cannot open", &path, e))?;
                CommitLog {
                    dir: dir.to_owned(),
                    file,
                    current_first,
                    len,
                    next,
                    sync,
                    segment_bytes,
                    broken: None,
                    buf: Vec::new(),
                }
            }
            _ => CommitLog::create(dir, applied + 1, sync, segment_bytes)?,
        };
        log.buf.reserve(4096);
        Ok(log)
    }

    /// A log whose first segment starts at `next`.
    fn create(dir: &Path, next: u64, sync: bool, segment_bytes: u64) -> Result<CommitLog> {
        let file = new_segment(dir, next)?;
        Ok(CommitLog {
            dir: dir.to_owned(),
            file,
            current_first: next,
            len: MAGIC.len() as u64,
            next,
            sync,
            segment_bytes,
            broken: None,
            buf: Vec::new(),
        })
    }

    /// The lsn the next record will get.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next
    }

    /// Appends `payload` as the next record and, with `sync`, makes it
    /// durable. On failure nothing of it is left in the log.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<Appended> {
        if let Some(why) = &self.broken {
            return Err(StoreError::Unavailable(format!("the commit log cannot take writes: {why}")));
        }
        if payload.len() > MAX_RECORD as usize {
            return Err(StoreError::Backend(format!(
                "a batch's commit log record of {} bytes is larger than the most a record holds ({MAX_RECORD})",
                payload.len()
            )));
        }
        if self.len >= self.segment_bytes {
            self.roll()?;
        }
        let lsn = self.next;
        let start = self.len;
        self.buf.clear();
        self.buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&checksum(lsn, payload).to_le_bytes());
        self.buf.extend_from_slice(&lsn.to_le_bytes());
        self.buf.extend_from_slice(payload);
        let appended = Appended { lsn, start };
        let path = segment_path(&self.dir, self.current_first);
        let written = failpoint("log::append::before")
            .and_then(|()| {
                // A write cut in the middle, as a crash during it leaves.
                let half = &self.buf[..self.buf.len() / 2];
                failpoint_with("log::append::mid", || {
                    let _ = self.file.write_all_at(half, start);
                })
            })
            .and_then(|()| self.file.write_all_at(&self.buf, start).map_err(|e| io_error("cannot append to", &path, e)))
            .and_then(|()| failpoint("log::sync::before"))
            .and_then(|()| {
                if self.sync {
                    self.file.sync_data().map_err(|e| io_error("cannot sync", &path, e))?;
                }
                Ok(())
            });
        if let Err(e) = written {
            self.cut(start);
            return Err(e);
        }
        crashpoint("log::sync::after");
        metrics::histogram!("ctxmesh_commit_log_record_bytes").record(self.buf.len() as f64);
        self.len = start + self.buf.len() as u64;
        self.next = lsn + 1;
        Ok(appended)
    }

    /// Takes back the last record appended (`appended`), whose batch was
    /// not committed: it must not be replayed.
    pub(crate) fn undo(&mut self, appended: Appended) {
        debug_assert_eq!(appended.lsn + 1, self.next, "only the last record is taken back");
        self.cut(appended.start);
        self.next = appended.lsn;
    }

    /// Cuts the current segment back to `len` bytes, durably; when that
    /// fails, the log is broken (its end is unknown) and refuses appends
    /// until the store is opened again.
    fn cut(&mut self, len: u64) {
        let cut = self.file.set_len(len).and_then(|()| if self.sync { self.file.sync_data() } else { Ok(()) });
        match cut {
            Ok(()) => self.len = len,
            Err(e) => {
                tracing::error!(error = %e, "the commit log could not be cut back after a failed write; writes stop");
                self.broken = Some(format!("a failed append could not be taken back ({e}); restart the server"));
            }
        }
    }

    /// Closes the current segment and starts the next one.
    fn roll(&mut self) -> Result<()> {
        self.file = new_segment(&self.dir, self.next)?;
        self.current_first = self.next;
        self.len = MAGIC.len() as u64;
        Ok(())
    }

    /// What removes closed segments, for the checkpoint thread.
    pub(crate) fn trimmer(&self) -> Trimmer {
        Trimmer { dir: self.dir.clone() }
    }
}

/// Creates the segment starting at `first`, with its header, durably.
fn new_segment(dir: &Path, first: u64) -> Result<File> {
    let path = segment_path(dir, first);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error("cannot create", &path, e))?;
    file.write_all(MAGIC).and_then(|()| file.sync_all()).map_err(|e| io_error("cannot write", &path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Removes the closed segments whose records are all durable in the
/// database file.
pub(crate) struct Trimmer {
    dir: PathBuf,
}

impl Trimmer {
    /// Removes every closed segment whose records are all at or before
    /// `durable`; how many.
    pub(crate) fn trim(&self, durable: u64) -> Result<usize> {
        let found = segments(&self.dir)?;
        let mut removed = 0;
        // A segment ends where the next begins; the newest is never closed.
        for pair in found.windows(2) {
            let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
            if next_first - 1 > durable {
                break;
            }
            failpoint("log::trim")?;
            std::fs::remove_file(path).map_err(|e| io_error("cannot remove", path, e))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
            metrics::counter!("ctxmesh_commit_log_segments_removed_total").increment(removed as u64);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments this small hold two or three records each.
    const SMALL: u64 = 40;

    /// Opens the log in `dir` on a database that holds records up to
    /// `applied`: the log and the records it replayed.
    fn open(dir: &Path, applied: u64) -> Result<(CommitLog, Vec<(u64, String)>)> {
        let mut replayed = Vec::new();
        let log = CommitLog::open(dir, applied, true, SMALL, |lsn, payload| {
            replayed.push((lsn, String::from_utf8(payload.to_vec()).unwrap()));
            Ok(())
        })?;
        Ok((log, replayed))
    }

    /// A log in a new directory holding records `r1..=rN`.
    fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let (mut log, replayed) = open(&dir, 0).unwrap();
        assert!(replayed.is_empty());
        for i in 1..=n {
            assert_eq!(log.append(format!("r{i}").as_bytes()).unwrap().lsn, i);
        }
        (tmp, dir)
    }

    fn lsns(replayed: &[(u64, String)]) -> Vec<u64> {
        replayed.iter().map(|(lsn, _)| *lsn).collect()
    }

    /// The newest segment's path.
    fn newest(dir: &Path) -> PathBuf {
        segments(dir).unwrap().pop().unwrap().1
    }

    #[test]
    fn records_after_the_applied_one_are_replayed_in_order_across_segments() {
        let (_tmp, dir) = log_with(7);
        assert!(segments(&dir).unwrap().len() >= 3, "small segments roll");
        let (log, replayed) = open(&dir, 3).unwrap();
        assert_eq!(lsns(&replayed), [4, 5, 6, 7]);
        assert_eq!(replayed[0].1, "r4");
        assert_eq!(log.next_lsn(), 8);
        let (_, all) = open(&dir, 0).unwrap();
        assert_eq!(lsns(&all), (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_its_number_reused() {
        let (_tmp, dir) = log_with(5);
        let path = newest(&dir);
        let whole = std::fs::metadata(&path).unwrap().len();
        // Half of a sixth record, as a crash in the middle of its write
        // leaves it.
        let mut record = Vec::new();
        record.extend_from_slice(&10u32.to_le_bytes());
        record.extend_from_slice(&checksum(6, b"0123456789").to_le_bytes());
        record.extend_from_slice(&6u64.to_le_bytes());
        record.extend_from_slice(b"01234");
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&record).unwrap();
        let (mut log, replayed) = open(&dir, 0).unwrap();
        assert_eq!(lsns(&replayed), [1, 2, 3, 4, 5]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn record was cut off");
        assert_eq!(log.append(b"again").unwrap().lsn, 6);
        drop(log);
        let (_, replayed) = open(&dir, 5).unwrap();
        assert_eq!(replayed, [(6, "again".to_owned())]);
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let (_tmp, dir) = log_with(2);
        let path = newest(&dir);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[0; 100]).unwrap();
        let (log, replayed) = open(&dir, 0).unwrap();
        assert_eq!(lsns(&replayed), [1, 2]);
        assert_eq!(log.next_lsn(), 3);
    }

    #[test]
    fn damage_before_whole_data_refuses_to_open() {
        let (_tmp, dir) = log_with(7);
        // A bit flipped inside the first record of the first segment.
        let (_, path) = segments(&dir).unwrap().remove(0);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = MAGIC.len() + HEADER;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = open(&dir, 0).err().expect("refused");
        assert!(err.to_string().contains("damaged"), "{err}");
        // In the newest segment too, when a whole record follows.
        let (_tmp, dir) = log_with(2);
        let path = newest(&dir);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[7; 20]).unwrap();
        let mut log = CommitLog::open(&dir, 0, true, 1 << 20, |_, _| Ok(())).unwrap();
        drop(log.append(b"x"));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = MAGIC.len() + HEADER + 2;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(open(&dir, 0).is_err());
    }

    #[test]
    fn missing_records_refuse_to_open() {
        let (_tmp, dir) = log_with(7);
        let found = segments(&dir).unwrap();
        std::fs::remove_file(&found[1].1).unwrap();
        let err = open(&dir, 0).err().expect("refused");
        assert!(err.to_string().contains("missing"), "{err}");
        // Unless the database already holds them.
        let (log, replayed) = open(&dir, found[2].0 - 1).unwrap();
        assert_eq!(replayed.first().map(|r| r.0), Some(found[2].0));
        assert_eq!(log.next_lsn(), 8);
    }

    #[test]
    fn an_undone_record_is_never_replayed() {
        let (_tmp, dir) = log_with(2);
        let (mut log, _) = open(&dir, 2).unwrap();
        let appended = log.append(b"not committed").unwrap();
        assert_eq!(appended.lsn, 3);
        log.undo(appended);
        assert_eq!(log.next_lsn(), 3);
        assert_eq!(log.append(b"committed").unwrap().lsn, 3);
        drop(log);
        let (_, replayed) = open(&dir, 2).unwrap();
        assert_eq!(replayed, [(3, "committed".to_owned())]);
    }

    #[test]
    fn trimming_removes_closed_segments_behind_the_durable_point_only() {
        let (_tmp, dir) = log_with(9);
        let before = segments(&dir).unwrap();
        let trimmer = Trimmer { dir: dir.clone() };
        assert_eq!(trimmer.trim(0).unwrap(), 0);
        let durable = before[2].0 - 1;
        let removed = trimmer.trim(durable).unwrap();
        assert_eq!(removed, 2);
        let after = segments(&dir).unwrap();
        assert_eq!(after[0].0, before[2].0);
        // The newest segment stays whatever is durable.
        trimmer.trim(u64::MAX - 1).unwrap();
        assert_eq!(segments(&dir).unwrap().len(), 1);
        let (log, replayed) = open(&dir, 9).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(log.next_lsn(), 10);
    }

    #[test]
    fn a_database_ahead_of_the_log_continues_after_it() {
        let (_tmp, dir) = log_with(2);
        let (mut log, replayed) = open(&dir, 5).unwrap();
        assert!(replayed.is_empty());
        assert_eq!(log.append(b"six").unwrap().lsn, 6);
        drop(log);
        let (_, replayed) = open(&dir, 5).unwrap();
        assert_eq!(replayed, [(6, "six".to_owned())]);
    }
}

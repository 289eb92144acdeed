//! Fault injection on the reload path (hardening issue), against the real server and a real tonic client: an
//! unreadable file, the directory deleted and re-created, a file replaced by a directory, a symlink loop,
//! non-UTF-8 bytes and a disk-full style partial write. In every case the server keeps serving the last good
//! snapshot (same revision, same decision), reports the error in `GetStatus.last_reload_error`, and recovers
//! by itself, without a restart, once the files are fixed. Waits are generous polls, never timing assertions.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{allow, Harness};

const GOOD: &str = "policies.yaml";

/// Starts a server on `policies.yaml` (allows ReadKey) and `other.yaml` (allows CreateKey).
/// The debounce is longer than the harness default so that a two-step fault (remove, then create) is never
/// loaded half-done on a busy machine.
async fn start() -> Harness {
    Harness::start_with(
        &[
            (GOOD, &allow("p1", "ReadKey")),
            ("other.yaml", &allow("p2", "CreateKey")),
        ],
        |c| c.debounce = std::time::Duration::from_millis(300),
    )
    .await
}

/// Waits until a reload failure mentioning `needle` is reported, then checks the last good snapshot is still
/// served unchanged.
async fn assert_keeps_last_good(h: &Harness, revision: &str, needle: &str) {
    h.eventually(&format!("a reload error mentioning `{needle}`"), || async {
        h.status().await.last_reload_error.contains(needle)
    })
    .await;
    let status = h.status().await;
    assert_eq!(status.revision, revision, "still the last good snapshot");
    assert!(status.reloads_failed >= 1);
    let d = h.authorize("alice", "ReadKey").await;
    assert!(common::is_allow(&d), "same decision: {d:?}");
    assert_eq!(d.revision, revision);
    assert!(h.allowed("CreateKey").await);
}

/// Fixes the set with an edit (ReadKey → UpdateKey) and waits for it to be served with the error cleared.
async fn assert_recovers(h: &Harness, old_revision: &str) {
    h.write(GOOD, &allow("p1", "UpdateKey"));
    h.eventually("recovery after the fix", || async {
        let s = h.status().await;
        s.last_reload_error.is_empty() && s.revision != old_revision
    })
    .await;
    assert!(h.allowed("UpdateKey").await);
    assert!(!h.allowed("ReadKey").await);
    assert!(h.allowed("CreateKey").await);
    assert_eq!(
        h.status().await.revision,
        common::disk_revision(h.dir.path())
    );
}

/// Makes `path` unreadable. Tests usually run as root, for whom mode 000 denies nothing: a probe read decides.
/// When root can still read it, the file is replaced by a FIFO instead (which a loader must neither read,
/// since it would block, nor skip, since its policies would vanish).
fn make_unreadable(path: &Path) -> &'static str {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(path).is_err() {
        return "Permission denied";
    }
    // Made under a hidden name (never loaded), then renamed over the file in one step.
    let fifo = path.with_file_name(".fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    std::fs::rename(&fifo, path).unwrap();
    "is not a regular file"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_file() {
    let h = start().await;
    let good = h.status().await.revision;
    let needle = make_unreadable(&h.path(GOOD));
    eprintln!("unreadable by: {needle}");
    assert_keeps_last_good(&h, &good, needle).await;
    assert!(h.status().await.last_reload_error.contains(GOOD));
    // The fix: a readable regular file again.
    std::fs::remove_file(h.path(GOOD)).unwrap();
    assert_recovers(&h, &good).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_deleted_and_recreated() {
    let h = start().await;
    let good = h.status().await.revision;
    std::fs::remove_dir_all(h.dir.path()).unwrap();
    assert_keeps_last_good(&h, &good, "cannot read policy directory").await;
    // Re-created with the old content: the same revision is served and the error clears.
    std::fs::create_dir(h.dir.path()).unwrap();
    h.write("other.yaml", &allow("p2", "CreateKey"));
    h.write(GOOD, &allow("p1", "ReadKey"));
    h.eventually("the error to clear", || async {
        h.status().await.last_reload_error.is_empty()
    })
    .await;
    assert_eq!(h.status().await.revision, good);
    // And the new directory is watched: a later edit is seen.
    assert_recovers(&h, &good).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_replaced_by_a_directory() {
    let h = start().await;
    let good = h.status().await.revision;
    std::fs::remove_file(h.path(GOOD)).unwrap();
    std::fs::create_dir(h.path(GOOD)).unwrap();
    assert_keeps_last_good(&h, &good, "is a directory").await;
    std::fs::remove_dir(h.path(GOOD)).unwrap();
    assert_recovers(&h, &good).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_loop() {
    let h = start().await;
    let good = h.status().await.revision;
    std::os::unix::fs::symlink(h.path("b.yaml"), h.path("a.yaml")).unwrap();
    std::os::unix::fs::symlink(h.path("a.yaml"), h.path("b.yaml")).unwrap();
    assert_keeps_last_good(&h, &good, "a.yaml").await;
    let error = h.status().await.last_reload_error;
    assert!(error.contains("symbolic links"), "{error}");
    std::fs::remove_file(h.path("a.yaml")).unwrap();
    std::fs::remove_file(h.path("b.yaml")).unwrap();
    assert_recovers(&h, &good).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_file() {
    let h = start().await;
    let good = h.status().await.revision;
    let mut bytes = allow("p1", "ReadKey").into_bytes();
    bytes.extend_from_slice(b"# caf\xe9 \xff\xfe\n");
    std::fs::write(h.path(GOOD), bytes).unwrap();
    assert_keeps_last_good(&h, &good, "not valid UTF-8").await;
    assert_recovers(&h, &good).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_write_as_on_a_full_disk() {
    let h = start().await;
    let good = h.status().await.revision;
    // The new content stops mid-way, as when `write` fails with ENOSPC and the editor closes the file.
    let full = allow("p1", "UpdateKey");
    let cut = full.find("resources").unwrap() + "resources: [\"".len();
    std::fs::write(h.path(GOOD), &full[..cut]).unwrap();
    assert_keeps_last_good(&h, &good, GOOD).await;
    assert!(
        h.status().await.last_reload_error.contains("invalid YAML"),
        "{}",
        h.status().await.last_reload_error
    );
    assert_recovers(&h, &good).await;
    h.stop().await;
}

/// Deleted and re-created in one step, before any periodic check can see the gap. The file system may give
/// the new directory the old inode number, so the watch must notice the removal itself, not the identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_replaced_in_one_step() {
    let h = start().await;
    let good = h.status().await.revision;
    std::fs::remove_dir_all(h.dir.path()).unwrap();
    std::fs::create_dir(h.dir.path()).unwrap();
    h.write("other.yaml", &allow("p2", "CreateKey"));
    h.write(GOOD, &allow("p1", "DeleteKey"));
    h.eventually("the re-created directory to be served", || async {
        h.allowed("DeleteKey").await
    })
    .await;
    let replaced = h.status().await.revision;
    assert_ne!(replaced, good);
    // The watch follows the new directory: a later edit is seen without a signal.
    assert_recovers(&h, &replaced).await;
    assert!(!h.allowed("DeleteKey").await);
    h.stop().await;
}

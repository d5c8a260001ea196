//! Private by default (issue 13 item 10): the index of a segment being written lives in a
//! directory others cannot enter from the moment it is made, and a store made in an existing
//! directory reports the mode it changed.

use std::os::unix::fs::PermissionsExt;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_index_being_built_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join(".seg-000001.index.tmp");
    let built = kaq_store::index::Builder::start(&tmp).finish().unwrap();
    assert_eq!(built.rows, 0);
    assert_eq!(mode(&tmp), 0o700, "made 0700, not with the umask's 0755");
}

#[test]
fn a_store_made_in_an_existing_directory_says_what_mode_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o750)).unwrap();
    let store = kaq_store::Store::create(&open).unwrap();
    assert_eq!((store.made_private(), mode(&open)), (Some(0o750), 0o700));
    // New, or already private: nothing to say.
    let fresh = kaq_store::Store::create(dir.path().join("new")).unwrap();
    assert_eq!(fresh.made_private(), None);
    drop(store);
    assert_eq!(kaq_store::Store::open_writer(&open).unwrap().made_private(), None);
}

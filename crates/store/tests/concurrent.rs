//! Readers during ingest: while one writer commits segment after segment (and compacts), readers
//! that open the store at any moment always succeed and always see a committed state: the events
//! of the first k inputs, never a part of one, never an error.

use kaq_store::{IngestOptions, Store};

fn events(file: usize, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"f{file}-{i}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns{file}/pods","verb":"get","user":{{"username":"u{}"}},"objectRef":{{"resource":"pods","namespace":"ns{file}"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2026-11-20T05:{:02}:{:02}.000000Z","stageTimestamp":"2026-11-20T05:{:02}:{:02}.500000Z"}}"#,
                i % 7,
                file % 60,
                i % 60,
                file % 60,
                i % 60
            ) + "\n"
        })
        .collect()
}

#[test]
fn readers_see_only_committed_states_while_a_writer_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let sizes: Vec<usize> = (0..8).map(|f| 200 + 37 * f).collect();
    let mut files = Vec::new();
    for (f, n) in sizes.iter().enumerate() {
        let p = dir.path().join(format!("part-{f}.log"));
        std::fs::write(&p, events(f, *n)).unwrap();
        files.push(p);
    }
    // The states a reader may see: the first k inputs committed (k = 0..=8).
    let prefixes: Vec<i64> = (0..=sizes.len()).map(|k| sizes[..k].iter().sum::<usize>() as i64).collect();
    Store::create(&path).unwrap();
    let writer = {
        let (path, files) = (path.clone(), files.clone());
        std::thread::spawn(move || {
            let mut store = Store::open_writer(&path).unwrap();
            for f in &files {
                store.ingest_paths(std::slice::from_ref(f), &IngestOptions::default()).unwrap();
            }
            // A compaction replaces every segment: readers holding the old manifest still read.
            store.compact().unwrap();
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut reads = 0;
    while !writer.is_finished() || reads < 20 {
        let store = Store::open(&path).unwrap();
        for q in ["| count", "verb:get | count", "ns:ns3 | count"] {
            let r = store.query(q).unwrap();
            let kaq_query::Val::Int(n) = r.rows[0].vals[0] else { panic!("{:?}", r.rows) };
            match q {
                "ns:ns3 | count" => assert!(n == 0 || n == sizes[3] as i64, "`{q}`: {n}"),
                _ => {
                    assert!(prefixes.contains(&n), "`{q}` saw {n} events, not a committed state {prefixes:?}");
                    seen.insert(n);
                }
            }
        }
        reads += 1;
    }
    writer.join().unwrap();
    eprintln!("{reads} reads saw the committed states {seen:?}");
    let end = Store::open(&path).unwrap();
    assert_eq!(end.manifest().segments.len(), 1);
    let r = end.query("| count").unwrap();
    assert_eq!(r.rows[0].vals[0], kaq_query::Val::Int(*prefixes.last().unwrap()));
    // The readers ran during the ingest, not only before or after it.
    assert!(reads >= 20 && !seen.is_empty(), "{reads} reads, states seen {seen:?}");
}

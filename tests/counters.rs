//! `recast status` reads counters kept by the catalog's triggers; after a real demo run (photos
//! converted, kept, failed, swept, originals deleted) they must equal a full recount.

mod common;

use common::{assert_success, Env};

#[test]
fn status_agrees_with_a_recount_after_a_demo_run() {
    let env = Env::new();
    // Two good photos and a corrupt one, cycled through the couples: some photos fail.
    let all = env.photos_with_corrupt();
    let photos = env.path("few");
    std::fs::create_dir_all(&photos).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let corrupt = names.iter().position(|n| n == "zz-corrupt.jpg").unwrap();
    for name in names.iter().take(2).chain([&names[corrupt]]) {
        std::fs::copy(all.join(name), photos.join(name)).unwrap();
    }
    let dir = env.path("demo");
    let demo = [
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        "6",
        "--max-photos",
        "3",
        "--thumbs",
        "2",
        "--originals",
        "delete",
    ];
    let out = env.recast(&demo).output().unwrap();
    assert_success(&out, &demo);
    let db = format!("sqlite://{}", dir.join("catalog.db").display());
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--db", &db, "--json"];
        args.extend_from_slice(extra);
        let out = env.recast(&args).output().unwrap();
        assert_success(&out, &args);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (counted, _) = status(&[]);
    let (scanned, note) = status(&["--recount"]);
    assert!(
        note.contains("agree"),
        "the recount found drifted counters: {note}"
    );
    assert_eq!(counted["status"], scanned["status"]);
    assert_eq!(counted["objects_after"], scanned["objects_after"]);
    let photos_total = counted["photos_total"].as_u64().unwrap();
    assert!(photos_total > 0, "{counted}");
    assert!(
        counted["status"]["failures"]
            .as_object()
            .is_some_and(|f| !f.is_empty()),
        "the corrupt photo is a failure: {counted}"
    );
    assert_eq!(counted["complete"], true, "{counted}");
}

//! For a randomized sequence of writes, reading at R returns exactly the
//! state after revision R, for every R, through the HTTP API.

use std::collections::BTreeMap;

use ctxmesh_client::{PatchKind, Precondition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::TestServer;

#[tokio::test]
async fn every_revision_reads_back_as_it_was() {
    let s = TestServer::start().await;
    let client = s.client().with_agent("writer");
    client.create_context(&json!({"id": "tt"})).await.unwrap();
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    let mut states: Vec<(u64, BTreeMap<String, Value>)> = vec![(1, model.clone())];
    for i in 0..150 {
        let key = format!("k/{}", rng.random_range(0..10));
        let revision = match rng.random_range(0..10) {
            0..=5 => {
                let value = json!({"i": i, "tag": rng.random_range(0..100)});
                model.insert(key.clone(), value.clone());
                client.put_entry("tt", &key, &json!({"value": value}), Precondition::None).await.unwrap().revision
            }
            6 | 7 if model.contains_key(&key) => {
                model.remove(&key);
                client.delete_entry("tt", &key, Precondition::None).await.unwrap()["revision"].as_u64().unwrap()
            }
            8 | 9 if model.contains_key(&key) => {
                let patched = model.get_mut(&key).unwrap();
                patched["p"] = json!(i);
                let e = client
                    .patch_entry("tt", &key, &json!({"p": i}), PatchKind::Merge, Precondition::None)
                    .await
                    .unwrap();
                assert_eq!(&e.value, patched, "seed {seed}");
                e.revision
            }
            _ => continue,
        };
        states.push((revision, model.clone()));
    }
    for pair in states.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "every write is exactly one revision (seed {seed})");
    }
    for (rev, expected) in &states {
        let page = client.list_entries("tt", &[("at", rev.to_string()), ("limit", "1000".into())]).await.unwrap();
        let got: BTreeMap<String, Value> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["key"].as_str().unwrap().to_owned(), e["value"].clone()))
            .collect();
        assert_eq!(&got, expected, "list at {rev} (seed {seed})");
        for k in 0..10 {
            let key = format!("k/{k}");
            let got = client.get_entry("tt", &key, Some(*rev)).await.ok().map(|e| e.value);
            assert_eq!(got.as_ref(), expected.get(&key), "{key} at {rev} (seed {seed})");
        }
        let doc = client.document("tt", Some(*rev)).await.unwrap();
        let flat: BTreeMap<String, Value> = doc["document"]["k"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (format!("k/{k}"), v.clone())).collect())
            .unwrap_or_default();
        assert_eq!(&flat, expected, "document at {rev} (seed {seed})");
    }
}

//! The context mesh over HTTP, on both stores: packages for a research →
//! writing → review pipeline built on seed 001's context map.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestServer, status_json};

const ADMIN: &str = "admin-secret-for-mesh-tests";

on_both_stores!(
    packages_follow_each_agents_needs_within_its_budget,
    packages_rebuild_what_an_agent_saw,
    broadcasts_reach_exactly_the_relevant_agents,
    children_inherit_from_their_parent,
    the_next_agents_package_is_ready_and_computed_once,
    consensus_agrees_or_escalates,
    keyword_search_filters_and_respects_access,
    seed_001s_context_map_as_written_gives_each_agent_what_its_needs_name,
    a_context_map_keeps_the_mesh_settings_patched_meanwhile,
);

async fn send(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.req(method, path).bearer_auth(ADMIN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    status_json(req.send().await.unwrap()).await
}

async fn ok(s: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = send(s, method.clone(), path, Some(body)).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
    answer
}

fn tokens(text: &str) -> usize {
    tiktoken_rs::cl100k_base().unwrap().encode_ordinary(text).len()
}

/// A long text of distinct sentences about `topic`.
fn long_text(topic: &str, sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Point {i} about {topic}: the {topic} analysis shows figure {} for segment {i}.", i * 7 + 3))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seed 001's context map: each agent's needs, and what it must not get.
async fn pipeline(s: &TestServer) {
    let agents = [
        json!({"id": "researcher", "objective": "research the market: sources, competitors, revenue",
            "needs": {"kinds": ["objective", "constraint"], "keys": ["quality/**"]}}),
        json!({"id": "writer", "objective": "write launch copy from the key findings, on brand, for the audience",
            "needs": {"keys": ["findings/**", "brand/**", "audience/**", "format/**"], "exclude": {"tags": ["raw"]}}}),
        json!({"id": "reviewer", "objective": "review the draft against the objective, quality criteria and brand",
            "needs": {"kinds": ["objective"], "keys": ["drafts/**", "quality/**", "brand/**"],
                "exclude": {"keys": ["findings/**"]}}}),
    ];
    for a in agents {
        ok(s, Method::POST, "/v1/agents", a).await;
    }
    ok(s, Method::POST, "/v1/contexts", json!({"id": "launch"})).await;
    let grant = json!({"agents": ["researcher", "writer", "reviewer"], "permissions": ["read", "write"]});
    ok(s, Method::POST, "/v1/contexts/launch/grants", grant).await;
    let entries = [
        ("task/objective", json!({"value": "Launch the X1 headset to small design studios.", "kind": "objective"})),
        ("task/search-constraints", json!({"value": "Sources from 2025 or later only.", "kind": "constraint"})),
        ("quality/criteria", json!({"value": "Every claim cites a source. No superlatives."})),
        ("findings/revenue", json!({"value": "Apple revenue grew 15% YoY.", "kind": "finding", "confidence": 0.9})),
        ("findings/competitors", json!({"value": long_text("competitor", 40), "kind": "finding"})),
        ("findings/raw-notes", json!({"value": "unfiltered scraps", "kind": "finding", "tags": ["raw"]})),
        ("brand/guidelines", json!({"value": long_text("brand voice", 30)})),
        ("audience/profile", json!({"value": "Studios of 2 to 20 designers, price-sensitive."})),
        ("format/requirements", json!({"value": "Three paragraphs, one call to action."})),
        ("drafts/v1", json!({"value": "Meet X1: the headset that listens.", "kind": "output"})),
        ("ops/deploy-log", json!({"value": "deployed build 4411 to staging"})),
        ("findings/secret-deal", json!({"value": "partner terms", "kind": "finding", "confidential": true})),
    ];
    for (key, body) in entries {
        ok(s, Method::PUT, &format!("/v1/contexts/launch/entries/{key}"), body).await;
    }
}

fn keys(package: &Value) -> Vec<String> {
    package["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_owned()).collect()
}

async fn packages_follow_each_agents_needs_within_its_budget(s: TestServer) {
    pipeline(&s).await;
    let expectations = [
        ("researcher", vec!["task/objective", "task/search-constraints", "quality/criteria"]),
        (
            "writer",
            vec![
                "findings/revenue",
                "findings/competitors",
                "brand/guidelines",
                "audience/profile",
                "format/requirements",
            ],
        ),
        ("reviewer", vec!["task/objective", "quality/criteria", "brand/guidelines", "drafts/v1"]),
    ];
    for (agent, needed) in &expectations {
        // A budget that holds everything: exactly what the needs name.
        let (status, p) =
            send(&s, Method::GET, &format!("/v1/contexts/launch/package?agent={agent}&budget=20000"), None).await;
        assert_eq!(status, 200, "{p}");
        let mut got = keys(&p);
        got.sort();
        let mut want: Vec<String> = needed.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{agent}'s package holds what its needs name, and nothing else");
        assert!(p["items"].as_array().unwrap().iter().all(|i| i["status"] == "included"));
        assert_eq!(p["tokens"].as_u64().unwrap() as usize, tokens(p["text"].as_str().unwrap()));
    }

    // A tight budget: the writer's package degrades by summaries and
    // references, never by cutting an entry, and stays within the budget.
    for budget in [120, 200, 400] {
        let path = format!("/v1/contexts/launch/package?agent=writer&budget={budget}&format=markdown");
        let r = s.req(Method::GET, &path).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/markdown; charset=utf-8");
        let counted: usize = r.headers()["x-package-tokens"].to_str().unwrap().parse().unwrap();
        let text = r.text().await.unwrap();
        assert_eq!(tokens(&text), counted, "the header is the tokenizer's own count");
        assert!(counted <= budget, "{counted} tokens > budget {budget}");
        assert!(
            !text.contains("unfiltered scraps") && !text.contains("partner terms") && !text.contains("deployed build")
        );

        let (_, p) =
            send(&s, Method::GET, &format!("/v1/contexts/launch/package?agent=writer&budget={budget}"), None).await;
        assert!(p["tokens"].as_u64().unwrap() as usize <= budget);
        let items = p["items"].as_array().unwrap();
        let statuses: Vec<&str> = items.iter().map(|i| i["status"].as_str().unwrap()).collect();
        assert!(statuses.iter().any(|s| *s != "included"), "budget {budget}: something had to give: {statuses:?}");
        let competitors = long_text("competitor", 40);
        let brand = long_text("brand voice", 30);
        for item in items {
            let key = item["key"].as_str().unwrap();
            let text = item["text"].as_str().unwrap();
            assert_eq!(item["reference"], format!("{key}@{}", item["revision"]));
            match item["status"].as_str().unwrap() {
                "included" => assert!(item["value"].is_string() || item["value"].is_object()),
                "compressed" => {
                    let source = if key.contains("competitors") { &competitors } else { &brand };
                    let summary = text.split_once('\n').unwrap().1;
                    for sentence in ctxmesh_core::mesh::sentences(summary) {
                        assert!(source.contains(sentence), "{key}: {sentence:?} is a whole sentence of the entry");
                    }
                }
                "referenced" => assert!(text.contains(&format!("{key}@"))),
                other => panic!("unknown status {other}"),
            }
        }
        let dropped: Vec<&str> = p["dropped"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
        for key in keys(&p).iter().map(String::as_str).chain(dropped.iter().copied()) {
            assert!(expectations[1].1.contains(&key), "{key} is one the writer needs");
        }
    }

    // Another tokenizer counts differently; the budget holds all the same.
    let (_, p) =
        send(&s, Method::GET, "/v1/contexts/launch/package?agent=writer&budget=150&encoding=o200k_base", None).await;
    let o200k = tiktoken_rs::o200k_base().unwrap().encode_ordinary(p["text"].as_str().unwrap()).len();
    assert_eq!((p["encoding"].as_str(), p["tokens"].as_u64()), (Some("o200k_base"), Some(o200k as u64)));
    assert!(o200k <= 150);

    // explain: the signals of each entry, and why the others are out.
    let (_, p) =
        send(&s, Method::GET, "/v1/contexts/launch/package?agent=writer&budget=20000&explain=true", None).await;
    let revenue = p["items"].as_array().unwrap().iter().find(|i| i["key"] == "findings/revenue").unwrap();
    assert_eq!(
        (revenue["explain"]["needs"].as_f64(), revenue["explain"]["confidence"].as_f64()),
        (Some(1.0), Some(0.9))
    );
    let out: Vec<(&str, &str)> = p["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["key"].as_str().unwrap(), d["reason"].as_str().unwrap()))
        .collect();
    assert!(out.contains(&("findings/raw-notes", "excluded")), "{out:?}");
    assert!(out.contains(&("ops/deploy-log", "threshold")), "{out:?}");
    assert!(!out.iter().any(|(k, _)| *k == "findings/secret-deal"), "confidential entries are not even listed");

    // Bad requests.
    for (path, status) in [
        ("/v1/contexts/launch/package?agent=nobody", 404),
        ("/v1/contexts/launch/package?agent=writer&budget=0", 400),
        ("/v1/contexts/launch/package?agent=writer&encoding=p50k", 400),
        ("/v1/contexts/launch/package?agent=writer&at=999", 404),
    ] {
        assert_eq!(send(&s, Method::GET, path, None).await.0, status, "{path}");
    }
}

async fn packages_rebuild_what_an_agent_saw(s: TestServer) {
    pipeline(&s).await;
    let (_, before) = send(&s, Method::GET, "/v1/contexts/launch/package?agent=writer", None).await;
    let seen = before["revision"].as_u64().unwrap();
    // The writer records its decision with the revision it read.
    let r = s
        .req(Method::POST, "/v1/contexts/launch/decisions")
        .bearer_auth(ADMIN)
        .header("x-agent-id", "writer")
        .json(&json!({"decision": {"headline": "Meet X1"}, "read_revision": seen}));
    let (status, record) = status_json(r.send().await.unwrap()).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["entry"]["key"], format!("decisions/writer/{seen}"));
    assert_eq!(record["entry"]["kind"], "decision");
    assert_eq!(record["entry"]["value"]["read_revision"].as_u64(), Some(seen));
    let replay = record["replay"].as_str().unwrap().to_owned();
    let bad = json!({"decision": 1, "read_revision": 9999});
    assert_eq!(send(&s, Method::POST, "/v1/contexts/launch/decisions", Some(bad)).await.0, 400);

    let pricing = json!({"value": "Rivals charge $199.", "kind": "finding"});
    ok(&s, Method::PUT, "/v1/contexts/launch/entries/findings/pricing", pricing).await;
    let (_, now) = send(&s, Method::GET, "/v1/contexts/launch/package?agent=writer", None).await;
    assert!(keys(&now).contains(&"findings/pricing".to_owned()));
    let (_, then) = send(&s, Method::GET, &replay, None).await;
    assert_eq!(then["revision"].as_u64(), Some(seen));
    assert_eq!(then["text"], before["text"], "the package at a revision is what the agent saw then");
    assert!(!keys(&then).contains(&"findings/pricing".to_owned()));
}

async fn inbox(s: &TestServer, agent: &str) -> Vec<Value> {
    let (status, page) = send(s, Method::GET, &format!("/v1/agents/{agent}/inbox?after=0"), None).await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().iter().filter(|e| e["type"] == "context.broadcast").cloned().collect()
}

async fn broadcasts_reach_exactly_the_relevant_agents(s: TestServer) {
    let agents = [
        json!({"id": "legal", "needs": {"tags": ["regulatory"]}}),
        json!({"id": "product", "needs": {"keys": ["findings/**"]}}),
        json!({"id": "marketing", "needs": {"kinds": ["finding"]}}),
        json!({"id": "ops", "needs": {"keys": ["ops/**"]}}),
        json!({"id": "research", "needs": {"keys": ["findings/**"]}}),
    ];
    for a in agents {
        ok(&s, Method::POST, "/v1/agents", a).await;
    }
    ok(&s, Method::POST, "/v1/contexts", json!({"id": "market"})).await;
    // marketing would care, but may not read the context.
    let grant = json!({"agents": ["legal", "product", "ops", "research"], "permissions": ["read", "write"]});
    ok(&s, Method::POST, "/v1/contexts/market/grants", grant).await;
    let write = |key: &str, body: Value| {
        let path = format!("/v1/contexts/market/entries/{key}");
        let s = &s;
        async move {
            let r = s.req(Method::PUT, &path).bearer_auth(ADMIN).header("x-agent-id", "research").json(&body);
            let (status, e) = status_json(r.send().await.unwrap()).await;
            assert!(status == 200 || status == 201, "{e}");
            e
        }
    };
    // A routine finding stays in the context.
    write("findings/minor", json!({"value": "A competitor changed its logo.", "kind": "finding"})).await;
    for agent in ["legal", "product", "marketing", "ops", "research"] {
        assert!(inbox(&s, agent).await.is_empty(), "{agent}: routine entries are not pushed");
    }
    // A critical one goes to the agents it is relevant to, that may read it.
    let body = json!({"value": "New EU rule on audio devices from March.", "kind": "finding",
        "tags": ["regulatory"], "priority": "critical"});
    let entry = write("findings/regulation", body).await;
    for (agent, expected) in [("legal", 1), ("product", 1), ("marketing", 0), ("ops", 0), ("research", 0)] {
        let got = inbox(&s, agent).await;
        assert_eq!(got.len(), expected, "{agent}: {got:?}");
        if let Some(b) = got.first() {
            assert_eq!(
                (b["key"].as_str(), b["revision"].as_u64()),
                (Some("findings/regulation"), entry["revision"].as_u64())
            );
            assert_eq!(b["data"]["value"], "New EU rule on audio devices from March.");
            assert!(b["data"]["score"].as_f64().unwrap() >= 0.25);
        }
    }
    // The context's log has one per recipient, without the value.
    let (_, log) = send(&s, Method::GET, "/v1/contexts/market/events?types=context.broadcast", None).await;
    let logged = log["events"].as_array().unwrap();
    let mut to: Vec<&str> = logged.iter().map(|e| e["data"]["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["legal", "product"]);
    assert!(logged.iter().all(|e| e["data"].get("value").is_none()));
    // A confidential one reaches only explicit readers, without its value.
    let body = json!({"value": "Settlement terms.", "kind": "finding", "tags": ["regulatory"], "priority": "high",
        "confidential": true});
    write("findings/settlement", body).await;
    let legal = inbox(&s, "legal").await;
    assert_eq!(legal.len(), 2);
    assert!(legal[1]["data"].get("value").is_none() && legal[1]["data"]["confidential"] == true);
}

async fn children_inherit_from_their_parent(s: TestServer) {
    ok(&s, Method::POST, "/v1/contexts", json!({"id": "parent"})).await;
    for (key, body) in [
        ("brand/voice", json!({"value": "warm", "tags": ["brand"]})),
        ("brand/colors", json!({"value": ["red"]})),
        ("plan/steps", json!({"value": [1, 2]})),
        ("secrets/key", json!({"value": "s3cr3t"})),
        ("brand/legal", json!({"value": "NDA", "confidential": true})),
    ] {
        ok(&s, Method::PUT, &format!("/v1/contexts/parent/entries/{key}"), body).await;
    }
    let child = json!({"id": "child", "parent": "parent", "inherit": ["brand/**", "secrets/*"], "isolate": ["secrets/**"],
        "override": {"brand/colors": ["blue"], "task": "new campaign"}});
    let info = ok(&s, Method::POST, "/v1/contexts", child).await;
    assert_eq!((info["parent"].as_str(), info["revision"].as_u64()), (Some("parent"), Some(1)));
    let (_, list) = send(&s, Method::GET, "/v1/contexts/child/entries", None).await;
    let got: BTreeMap<String, Value> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().to_owned(), e["value"].clone()))
        .collect();
    let want = BTreeMap::from([
        ("brand/colors".to_owned(), json!(["blue"])),
        ("brand/voice".to_owned(), json!("warm")),
        ("task".to_owned(), json!("new campaign")),
    ]);
    assert_eq!(got, want, "inherited, overridden, isolated; never a confidential entry");
    let (_, voice) = send(&s, Method::GET, "/v1/contexts/child/entries/brand/voice", None).await;
    assert_eq!(voice["tags"], json!(["brand"]), "metadata comes along");
    // The parent is unchanged, and must exist.
    assert_eq!(
        send(&s, Method::GET, "/v1/contexts/parent/entries/brand/colors", None).await.1["value"],
        json!(["red"])
    );
    let orphan = json!({"id": "orphan", "parent": "nope"});
    assert_eq!(send(&s, Method::POST, "/v1/contexts", Some(orphan)).await.0, 404);
    let stray = json!({"id": "stray", "inherit": ["a/*"]});
    assert_eq!(send(&s, Method::POST, "/v1/contexts", Some(stray)).await.0, 400);
    assert_eq!(send(&s, Method::GET, "/v1/contexts/orphan", None).await.0, 404, "nothing was created");
}

async fn the_next_agents_package_is_ready_and_computed_once(s: TestServer) {
    pipeline(&s).await;
    let get = |agent: &'static str| {
        let s = &s;
        async move {
            let path = format!("/v1/contexts/launch/package?agent={agent}");
            let r = s.req(Method::GET, &path).bearer_auth(ADMIN).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let cache = r.headers()["x-package-cache"].to_str().unwrap().to_owned();
            let p: Value = r.json().await.unwrap();
            (cache, p)
        }
    };
    // Identical requests at the same time: computed once.
    let answers = futures::future::join_all((0..8).map(|_| get("reviewer"))).await;
    let misses = answers.iter().filter(|(c, _)| c == "miss").count();
    assert_eq!(misses, 1, "{:?}", answers.iter().map(|(c, _)| c).collect::<Vec<_>>());
    assert!(answers.windows(2).all(|w| w[0].1 == w[1].1), "all got the same package");

    // A workflow: when the researcher writes, the writer's package is
    // computed ahead, at the revision of that write.
    let workflow = json!({"mesh": {"workflow": ["researcher", "writer", "reviewer"]}});
    ok(&s, Method::PATCH, "/v1/contexts/launch", workflow).await;
    let r = s
        .req(Method::PUT, "/v1/contexts/launch/entries/findings/churn")
        .bearer_auth(ADMIN)
        .header("x-agent-id", "researcher")
        .json(&json!({"value": "Churn fell to 3%.", "kind": "finding"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (cache, p) = get("writer").await;
    assert_eq!(cache, "hit", "the writer's package was ready: {}", p["revision"]);
    assert!(keys(&p).contains(&"findings/churn".to_owned()), "and it holds the new finding");
    let (cache, _) = get("researcher").await;
    assert_eq!(cache, "miss", "nobody comes before the researcher");
    let metrics = s.req(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("ctxmesh_package_cache_hit_ratio"), "the hit ratio is in /metrics");
}

async fn consensus_agrees_or_escalates(s: TestServer) {
    ok(&s, Method::POST, "/v1/contexts", json!({"id": "vote"})).await;
    let proposals = json!([
        {"agent": "a", "value": {"price": 199}, "confidence": 0.9},
        {"agent": "b", "value": {"price": 199}, "confidence": 0.6},
        {"agent": "c", "value": {"price": 249}, "confidence": 0.5},
    ]);
    // 1.5 of 2.0 for 199: agreed, and written.
    let body = json!({"key": "decisions/price", "proposals": proposals, "min_agreement": 0.6});
    let (status, out) = send(&s, Method::POST, "/v1/contexts/vote/consensus", Some(body)).await;
    assert_eq!((status, out["agreed"].as_bool()), (200, Some(true)), "{out}");
    assert_eq!(out["agreement"].as_f64(), Some(0.75));
    assert_eq!(out["candidates"][0]["agents"], json!(["a", "b"]));
    let (_, entry) = send(&s, Method::GET, "/v1/contexts/vote/entries/decisions/price", None).await;
    assert_eq!((entry["value"].clone(), entry["kind"].as_str()), (json!({"price": 199}), Some("decision")));
    assert_eq!(entry["confidence"].as_f64(), Some(0.75));

    // Below the bar: escalated as a pending conflict, nothing written.
    let body = json!({"key": "decisions/launch", "proposals": [
        {"agent": "a", "value": "march", "confidence": 0.5},
        {"agent": "b", "value": "april", "confidence": 0.4},
        {"agent": "c", "value": "may", "confidence": 0.3}], "min_agreement": 0.6});
    let (status, out) = send(&s, Method::POST, "/v1/contexts/vote/consensus", Some(body)).await;
    assert_eq!((status, out["agreed"].as_bool()), (202, Some(false)), "{out}");
    let conflict = &out["conflict"];
    assert_eq!((conflict["severity"].as_str(), conflict["status"].as_str()), (Some("high"), Some("pending")));
    assert_eq!(conflict["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(send(&s, Method::GET, "/v1/contexts/vote/entries/decisions/launch", None).await.0, 404);
    let (_, log) = send(&s, Method::GET, "/v1/contexts/vote/events?types=conflict.detected", None).await;
    assert_eq!(log["events"][0]["key"], "decisions/launch");
    // Resolved like any conflict: the leading candidate is the proposed value.
    let resolve = format!("/v1/contexts/vote/conflicts/{}/resolve", conflict["id"].as_str().unwrap());
    assert_eq!(send(&s, Method::POST, &resolve, Some(json!({"choose": "proposed"}))).await.0, 200);
    assert_eq!(send(&s, Method::GET, "/v1/contexts/vote/entries/decisions/launch", None).await.1["value"], "march");

    // Bad input changes nothing.
    for body in [
        json!({"key": "k", "proposals": []}),
        json!({"key": "k", "proposals": [{"agent": "a", "value": 1, "confidence": 2}]}),
        json!({"key": "k", "proposals": [{"agent": "a", "value": 1}], "min_agreement": 0}),
        json!({"key": "bad//key", "proposals": [{"agent": "a", "value": 1}]}),
    ] {
        assert_eq!(send(&s, Method::POST, "/v1/contexts/vote/consensus", Some(body.clone())).await.0, 400, "{body}");
    }
}

/// The real all-MiniLM-L6-v2 model directory (./scripts/test installs it).
fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var("CTXMESH_TEST_MODEL_DIR")
        .expect("CTXMESH_TEST_MODEL_DIR names the all-MiniLM-L6-v2 directory: run ./scripts/test, which installs it");
    std::path::PathBuf::from(dir)
}

async fn semantic_server(backend: crate::Backend) -> TestServer {
    let model = ctxmesh_server::mesh::LocalEmbedder::load(&model_dir()).expect("the model loads");
    TestServer::with_mesh(backend, ADMIN, Some(std::sync::Arc::new(model)), None).await
}

async fn search(s: &TestServer, query: &str) -> (u16, Value) {
    send(s, Method::GET, &format!("/v1/contexts/docs/search?{query}"), None).await
}

fn hit_keys(found: &Value) -> Vec<&str> {
    found["hits"].as_array().unwrap().iter().map(|h| h["key"].as_str().unwrap()).collect()
}

async fn corpus(s: &TestServer) {
    ok(s, Method::POST, "/v1/contexts", json!({"id": "docs"})).await;
    for (key, body) in [
        ("pets/cat", json!({"value": "The cat sat quietly on the warm windowsill.", "kind": "note", "tags": ["home"]})),
        ("finance/q3", json!({"value": "Quarterly revenue rose by fifteen percent.", "kind": "finding"})),
        ("weather/storm", json!({"value": "Heavy rain and strong winds are expected tomorrow.", "kind": "note"})),
        ("finance/q4", json!({"value": "Revenue fell in the fourth quarter.", "kind": "finding", "tags": ["draft"]})),
        ("finance/secret", json!({"value": "Revenue target for the buyer.", "confidential": true})),
    ] {
        ok(s, Method::PUT, &format!("/v1/contexts/docs/entries/{key}"), body).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_search_ranks_a_paraphrase_above_unrelated_entries() {
    let s = semantic_server(crate::Backend::Sqlite).await;
    corpus(&s).await;
    let q = "q=a%20kitten%20resting%20by%20the%20window";
    let (status, found) = search(&s, &format!("{q}&mode=semantic")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(hit_keys(&found)[0], "pets/cat", "{found}");
    let scores: Vec<f64> = found["hits"].as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores[0] > scores[1] + 0.1, "the paraphrase clearly first: {scores:?}");
    let (_, words) = search(&s, &format!("{q}&mode=keyword")).await;
    assert!(!hit_keys(&words).contains(&"pets/cat"), "no word in common: only meaning finds it");
    let (_, fused) = search(&s, q).await;
    assert_eq!((fused["mode"].as_str(), hit_keys(&fused)[0]), (Some("hybrid"), "pets/cat"));
    assert!(!hit_keys(&fused).contains(&"finance/secret"), "never a confidential entry");

    // The objective's meaning feeds an agent's relevance.
    ok(&s, Method::POST, "/v1/agents", json!({"id": "keeper", "objective": "look after the animals in the house"}))
        .await;
    ok(&s, Method::POST, "/v1/contexts/docs/grants", json!({"agents": ["keeper"], "permissions": ["read"]})).await;
    let (status, p) = send(&s, Method::GET, "/v1/contexts/docs/package?agent=keeper&explain=true", None).await;
    assert_eq!(status, 200, "{p}");
    let semantic = |key: &str| {
        let all = p["items"].as_array().unwrap().iter().chain(p["dropped"].as_array().unwrap());
        all.clone().find(|i| i["key"] == key).unwrap()["explain"]["semantic"].as_f64().unwrap()
    };
    assert!(semantic("pets/cat") > semantic("finance/q3"), "{p}");
}

async fn keyword_search_filters_and_respects_access(s: TestServer) {
    corpus(&s).await;
    let (status, found) = search(&s, "q=revenue").await;
    assert_eq!((status, found["mode"].as_str()), (200, Some("keyword")), "{found}");
    let mut keys = hit_keys(&found);
    keys.sort();
    assert_eq!(keys, ["finance/q3", "finance/q4"], "never a confidential entry");
    assert_eq!(hit_keys(&search(&s, "q=revenue&tags=draft").await.1), ["finance/q4"]);
    assert_eq!(hit_keys(&search(&s, "q=revenue%20rain&kind=note").await.1), ["weather/storm"]);
    assert!(hit_keys(&search(&s, "q=revenue&author=someone-else").await.1).is_empty());
    assert!(hit_keys(&search(&s, "q=revenue&since=2999-01-01T00:00:00Z").await.1).is_empty());
    assert_eq!(search(&s, "q=revenue&mode=semantic").await.0, 400, "no model configured");
    assert_eq!(search(&s, "q=").await.0, 400);
    assert_eq!(search(&s, "q=x&limit=0").await.0, 400);
    assert_eq!(search(&s, "q=x&since=yesterday").await.0, 400);
    // An agent finds only what it may read.
    ok(&s, Method::POST, "/v1/agents", json!({"id": "reader"})).await;
    let rule = json!({"id": "no-q4", "effect": "deny", "agents": "reader", "keys": "finance/q4"});
    ok(&s, Method::POST, "/v1/policies", rule).await;
    ok(&s, Method::POST, "/v1/contexts/docs/grants", json!({"agents": ["reader"], "permissions": ["read"]})).await;
    let token = ok(&s, Method::POST, "/v1/agents/reader/token", json!({})).await["token"].as_str().unwrap().to_owned();
    let r = s.req(Method::GET, "/v1/contexts/docs/search?q=revenue").bearer_auth(&token);
    let (_, found) = status_json(r.send().await.unwrap()).await;
    assert_eq!(hit_keys(&found), ["finance/q3"], "{found}");
}

/// A fake OpenAI-compatible server: chat completions answer `summary`
/// (or fail when it is `None`); embeddings are word-presence vectors.
async fn fake_llm(summary: Option<&'static str>) -> String {
    use axum::routing::post;
    let chat = move || async move {
        match summary {
            Some(s) => (axum::http::StatusCode::OK, axum::Json(json!({"choices": [{"message": {"content": s}}]}))),
            None => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({}))),
        }
    };
    let embeddings = |axum::Json(body): axum::Json<Value>| async move {
        let vocab = ["cat", "kitten", "revenue", "rain"];
        let data: Vec<Value> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let t = t.as_str().unwrap().to_lowercase();
                let v: Vec<f32> = vocab.iter().map(|w| if t.contains(w) { 1.0 } else { 0.01 }).collect();
                json!({"embedding": v})
            })
            .collect();
        axum::Json(json!({"data": data}))
    };
    let app = axum::Router::new().route("/v1/chat/completions", post(chat)).route("/v1/embeddings", post(embeddings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_summarizes_when_configured_and_the_extractive_summary_stands_when_it_fails() {
    use ctxmesh_server::mesh::{LlmSummarizer, RemoteEmbedder};
    for (answer, expect_llm) in [(Some("Rivals cut prices; we lead on sound."), true), (None, false)] {
        let url = fake_llm(answer).await;
        let llm = std::sync::Arc::new(LlmSummarizer::new(&url, "tiny", None));
        let s = TestServer::with_mesh(crate::Backend::Sqlite, ADMIN, None, Some(llm)).await;
        pipeline(&s).await;
        let (_, p) = send(&s, Method::GET, "/v1/contexts/launch/package?agent=writer&budget=200", None).await;
        let compressed: Vec<&Value> =
            p["items"].as_array().unwrap().iter().filter(|i| i["status"] == "compressed").collect();
        assert!(!compressed.is_empty(), "{p}");
        let by_llm = compressed.iter().any(|i| i["text"].as_str().unwrap().contains("Rivals cut prices"));
        assert_eq!(by_llm, expect_llm, "{p}");
        assert!(p["tokens"].as_u64().unwrap() <= 200);
        assert_eq!(p["tokens"].as_u64().unwrap() as usize, tokens(p["text"].as_str().unwrap()));
    }
    // An OpenAI-compatible embeddings endpoint serves semantic search too.
    let url = fake_llm(None).await;
    let embedder = std::sync::Arc::new(RemoteEmbedder::new(&url, "words", None));
    let s = TestServer::with_mesh(crate::Backend::Sqlite, ADMIN, Some(embedder), None).await;
    corpus(&s).await;
    let (status, found) = search(&s, "q=cat&mode=semantic").await;
    assert_eq!((status, hit_keys(&found).first().copied()), (200, Some("pets/cat")), "{found}");
}

/// The keys of `agent`'s package of `launch`, in and left out for the budget.
async fn package_keys(s: &TestServer, agent: &str) -> Vec<String> {
    let (status, p) =
        send(s, Method::GET, &format!("/v1/contexts/launch/package?agent={agent}&budget=4000"), None).await;
    assert_eq!(status, 200, "{p}");
    let mut keys: Vec<String> =
        p["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_owned()).collect();
    keys.sort();
    keys
}

async fn seed_001s_context_map_as_written_gives_each_agent_what_its_needs_name(s: TestServer) {
    ok(&s, Method::POST, "/v1/contexts", json!({"id": "launch"})).await;
    // Seed 001's example, as written (as text: the order of its agents is
    // the workflow's).
    let text = r#"{
  "agents": {
    "researcher": {
      "needs": ["task_objective", "search_constraints", "quality_criteria"],
      "produces": ["source_documents", "key_findings", "confidence_scores"]
    },
    "writer": {
      "needs": ["key_findings", "brand_guidelines", "audience_profile", "format_requirements"],
      "produces": ["draft_content", "reasoning_chain", "uncertainty_flags"]
    },
    "reviewer": {
      "needs": ["draft_content", "original_objective", "quality_criteria", "brand_guidelines"],
      "produces": ["feedback", "approval_status", "revision_suggestions"]
    }
  }
}"#;
    let map: Value = serde_json::from_str(text).unwrap();
    let put_text = |body: String| {
        s.req(Method::PUT, "/v1/contexts/launch/context-map")
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, answer) = status_json(put_text(text.to_owned()).send().await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["workflow"], json!(["researcher", "writer", "reviewer"]));
    assert_eq!(answer["agents"]["writer"]["needs"]["names"], map["agents"]["writer"]["needs"]);
    assert_eq!(answer["agents"]["reviewer"]["produces"]["names"], map["agents"]["reviewer"]["produces"]);
    let tokens = answer["tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), 3, "each agent was registered, its token shown once: {answer}");
    let info = send(&s, Method::GET, "/v1/contexts/launch", None).await.1;
    assert_eq!(info["mesh"]["workflow"], json!(["researcher", "writer", "reviewer"]));
    // A map says what agents need, not what they may read: access is granted
    // apart.
    let grant = json!({"agents": ["researcher", "writer", "reviewer"], "permissions": ["read", "write"]});
    ok(&s, Method::POST, "/v1/contexts/launch/grants", grant).await;

    // Entries named by their kind or a tag (seed 001's names are not keys:
    // keys have no `_`).
    let entries = [
        ("task/objective", json!({"value": "Launch the X1 headset.", "kind": "task_objective"})),
        ("task/constraints", json!({"value": "Sources from 2025 on.", "kind": "search_constraints"})),
        ("quality", json!({"value": "Every claim cites a source.", "tags": ["quality_criteria"]})),
        ("findings/revenue", json!({"value": "Revenue grew 15%.", "kind": "key_findings"})),
        ("brand/voice", json!({"value": "Plain and warm.", "kind": "brand_guidelines"})),
        ("audience/profile", json!({"value": "Small design studios.", "kind": "audience_profile"})),
        ("audience/pricing", json!({"value": "Price-sensitive.", "tags": ["audience_profile"]})),
        ("format", json!({"value": "Three paragraphs.", "tags": ["format_requirements"]})),
        ("drafts/v1", json!({"value": "Meet X1.", "kind": "draft_content"})),
        ("objective", json!({"value": "A launch post.", "kind": "original_objective"})),
        ("review/notes", json!({"value": "Cite the revenue source.", "kind": "feedback"})),
    ];
    for (key, body) in entries {
        ok(&s, Method::PUT, &format!("/v1/contexts/launch/entries/{key}"), body).await;
    }
    assert_eq!(package_keys(&s, "researcher").await, ["quality", "task/constraints", "task/objective"]);
    assert_eq!(
        package_keys(&s, "writer").await,
        ["audience/pricing", "audience/profile", "brand/voice", "findings/revenue", "format"]
    );
    assert_eq!(package_keys(&s, "reviewer").await, ["brand/voice", "drafts/v1", "objective", "quality"]);

    // The same map again changes nothing more and registers no one.
    let (status, again) = status_json(put_text(text.to_owned()).send().await.unwrap()).await;
    assert_eq!(status, 200, "{again}");
    assert!(again.get("tokens").is_none(), "{again}");
    assert_eq!(again["workflow"], answer["workflow"]);
    assert_eq!(send(&s, Method::GET, "/v1/contexts/launch/context-map", None).await.1, again);
    // An explicit workflow order wins over the order of `agents`.
    let mut reordered = map.clone();
    reordered["workflow"] = json!(["writer", "researcher", "reviewer"]);
    let answer = ok(&s, Method::PUT, "/v1/contexts/launch/context-map", reordered).await;
    assert_eq!(answer["workflow"], json!(["writer", "researcher", "reviewer"]));

    // The agents route takes the plain list too, and a name matches a key
    // and the keys under it.
    let editor = json!({"id": "editor", "needs": ["brand", "feedback"]});
    ok(&s, Method::POST, "/v1/agents", editor).await;
    ok(&s, Method::POST, "/v1/contexts/launch/grants", json!({"agents": ["editor"], "permissions": ["read"]})).await;
    assert_eq!(package_keys(&s, "editor").await, ["brand/voice", "review/notes"]);

    // Bad maps change nothing.
    let before = send(&s, Method::GET, "/v1/contexts/launch/context-map", None).await.1;
    for (bad, code) in [
        (json!({"agents": {}}), "invalid_argument"),
        (json!({"agents": {"writer": {"needs": ["x"], "wants": ["y"]}}}), "invalid_argument"),
        (json!({"agents": {"writer": {"needs": "key_findings"}}}), "invalid_argument"),
        (json!({"agents": {"writer": {"needs": [""]}}}), "invalid_argument"),
        (json!({"agents": {"bad id!": {"needs": ["x"]}}}), "invalid_id"),
        (json!({"agents": {"writer": {}}, "workflow": ["writer", "reviewer"]}), "invalid_argument"),
    ] {
        let (status, e) = send(&s, Method::PUT, "/v1/contexts/launch/context-map", Some(bad.clone())).await;
        assert_eq!((status, e["error"]["code"].as_str().unwrap()), (400, code), "{bad}: {e}");
    }
    assert_eq!(send(&s, Method::GET, "/v1/contexts/launch/context-map", None).await.1, before);
    let (status, _) = send(&s, Method::PUT, "/v1/contexts/nope/context-map", Some(map.clone())).await;
    assert_eq!(status, 404);
    // Registering agents is the admin's.
    let writer_token = tokens["writer"].as_str().unwrap();
    let req = s.req(Method::PUT, "/v1/contexts/launch/context-map").bearer_auth(writer_token).json(&map);
    let (status, e) = status_json(req.send().await.unwrap()).await;
    assert_eq!(status, 403, "{e}");
}

/// A context map sets the workflow alone: mesh settings that a `PATCH`
/// of the context changes while the map is written are kept.
async fn a_context_map_keeps_the_mesh_settings_patched_meanwhile(s: TestServer) {
    ok(&s, Method::POST, "/v1/contexts", json!({"id": "raced"})).await;
    let map = json!({
        "agents": {"planner": {"needs": ["goal"]}, "doer": {"needs": ["plan"]}},
        "workflow": ["planner", "doer"],
    });
    for round in 0..20 {
        let threshold = 0.3 + f64::from(round) / 100.0;
        let patch = json!({"mesh": {"threshold": threshold, "workflow": ["planner", "doer"]}});
        let (mapped, patched) = tokio::join!(
            send(&s, Method::PUT, "/v1/contexts/raced/context-map", Some(map.clone())),
            send(&s, Method::PATCH, "/v1/contexts/raced", Some(patch)),
        );
        assert_eq!(mapped.0, 200, "{}", mapped.1);
        assert_eq!(patched.0, 200, "{}", patched.1);
        let (_, info) = send(&s, Method::GET, "/v1/contexts/raced", None).await;
        let mesh = &info["mesh"];
        assert_eq!(mesh["threshold"], json!(threshold), "round {round}: the acknowledged PATCH was undone");
        assert_eq!(mesh["workflow"], json!(["planner", "doer"]), "round {round}");
    }
}

//! Throughput of a running server over HTTP: pushes 10k mutations in batches,
//! fills the user's space to 100k entities, then pulls all 100k changes page by
//! page. Prints rows/s for each phase. Run by `scripts/bench-server.sh`, which
//! starts the server on SQLite and on PostgreSQL.
//!
//! Usage: bench BASE_URL TOKEN LABEL

use std::time::Instant;

use serde_json::{json, Value};

const MEASURED_PUSH: u64 = 10_000;
const PUSH_BATCH: u64 = 100;
const TOTAL: u64 = 100_000;
const FILL_BATCH: u64 = 1_000;
const PULL_LIMIT: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, token, label] = args.as_slice() else {
        return Err("usage: bench BASE_URL TOKEN LABEL".into());
    };
    let http = reqwest::Client::new();
    let auth = format!("Bearer {token}");
    let push = |from: u64, count: u64| {
        let mutations: Vec<Value> = (from..from + count)
            .map(|n| json!({"mutationId": n + 1, "collection": "bench", "id": format!("e{n}"), "op": "put",
                            "data": {"title": format!("item {n}"), "n": n, "tags": ["a", "b"]}, "baseVersion": 0}))
            .collect();
        let request = http.post(format!("{base}/v1/push")).header("authorization", &auth).json(&json!({"clientId": "bench", "mutations": mutations}));
        async move {
            let response = request.send().await?.error_for_status()?;
            let body: Value = response.json().await?;
            let applied = body["results"].as_array().map_or(0, |r| r.iter().filter(|r| r["status"] == "applied").count());
            if applied as u64 != count {
                return Err(format!("only {applied} of {count} applied: {body}").into());
            }
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };

    let started = Instant::now();
    for from in (0..MEASURED_PUSH).step_by(PUSH_BATCH as usize) {
        push(from, PUSH_BATCH).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{label}: push {MEASURED_PUSH} mutations in batches of {PUSH_BATCH}: {secs:.2} s, {:.0} rows/s", MEASURED_PUSH as f64 / secs);

    let started = Instant::now();
    for from in (MEASURED_PUSH..TOTAL).step_by(FILL_BATCH as usize) {
        push(from, FILL_BATCH).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let filled = TOTAL - MEASURED_PUSH;
    println!("{label}: push {filled} mutations in batches of {FILL_BATCH}: {secs:.2} s, {:.0} rows/s", filled as f64 / secs);

    let started = Instant::now();
    let mut cursor = String::new();
    let mut pulled = 0usize;
    loop {
        let response = http
            .get(format!("{base}/v1/pull"))
            .query(&[("cursor", cursor.as_str()), ("limit", &PULL_LIMIT.to_string())])
            .header("authorization", &auth)
            .send()
            .await?
            .error_for_status()?;
        let page: Value = response.json().await?;
        pulled += page["changes"].as_array().map_or(0, Vec::len);
        cursor = page["cursor"].as_str().unwrap_or_default().to_string();
        if page["hasMore"] != true {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if pulled as u64 != TOTAL {
        return Err(format!("pulled {pulled} changes, expected {TOTAL}").into());
    }
    println!("{label}: pull {pulled} changes, {PULL_LIMIT} per page: {secs:.2} s, {:.0} rows/s", pulled as f64 / secs);
    Ok(())
}

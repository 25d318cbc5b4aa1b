//! Hostile tenants: bounded work, bounded memory, fair engine slots, bounded progress streams,
//! and the one JSON error shape for what axum refuses itself.

use super::*;

/// Progress streams are bounded: past `api.max_event_streams`, 503 and a way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_are_bounded() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| st.api.max_event_streams = 0).await;
    let c = company(&s, "harbin").await;
    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let (st, v) = trigger(&s, &c, "2025-10-20", "k").await;
    ok(st, &v, 202);
    let id = v["id"].as_i64().unwrap();
    let (st, v) = s
        .get(&format!("/v1/companies/harbin/runs/{id}/events"), &c.reader)
        .await;
    error(st, &v, 503, "poll GET");
    assert_eq!(
        s.app.event_streams.open_now(0).0,
        0,
        "a refused stream is not counted"
    );
    s.stop().await;
}

// ---- Hostile tenants: bounded work, bounded memory, fair slots ----

/// The id of a company, from the store.
async fn company_id(db: &TestDb, slug: &str) -> i32 {
    db.store.company(slug).await.unwrap().id
}

/// A schema pattern whose checks take seconds (`(?:a|b)*a(?:a|b){5000}c`: 11.7 s against a
/// 100 KB parameter, the API frozen meanwhile) is refused at upload, naming the limit; a long
/// parameter string is refused by its length, before any schema sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_bomb_is_refused_at_upload_and_a_long_parameter_by_its_length() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = s
        .upload("harbin", &c.integrator, component("regex-schema"))
        .await;
    error(st, &v, 422, "(limits.max_params_pattern_bytes)");
    let (_, v) = s.get("/v1/companies/harbin/plugins", &c.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 3, "nothing was stored: {v:#}");

    let (st, v) = import(&s, &c, "customers", CUSTOMERS).await;
    ok(st, &v, 200);
    let mut chain: Value = serde_json::from_str(CHAIN).unwrap();
    chain["effective_from"] = json!("2025-12-01");
    chain["entries"][1]["params"]["area_basis"] = json!("u".repeat(8_000));
    let (st, v) = s
        .post("/v1/companies/harbin/chains", &c.integrator, chain.clone())
        .await;
    error(
        st,
        &v,
        422,
        "is 8000 bytes; the limit is 4096 (limits.max_params_string_bytes)",
    );
    let (st, v) = s
        .post(
            "/v1/companies/harbin/dry-run",
            &c.staff,
            json!({"customer": "W2", "date": "2025-10-22", "chain": chain["entries"]}),
        )
        .await;
    error(st, &v, 422, "(limits.max_params_string_bytes)");
    let (_, v) = s.get("/v1/companies/harbin/chains", &c.reader).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "nothing changed: {v:#}");
    s.stop().await;
}

/// The review's finding: refused uploads grew the compile cache (10 refused 5.3 MB uploads:
/// the server's RSS 640 → 812 MB, the cache directory +165 MB). Uploads compiled and then
/// refused (no rules world) leave the cache as it was, in memory and on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_leave_nothing_in_the_compile_cache() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = heatbill_engine::Engine::new(heatbill_engine::EngineConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..crate::engine::test_config()
    })
    .unwrap();
    let s = Server::start_with_engine(&db, engine.clone()).await;
    let c = company(&s, "harbin").await;
    let held = |e: &heatbill_engine::Engine| {
        let s = e.cache_stats();
        (
            s.memory_entries,
            s.memory_bytes,
            s.disk_entries,
            s.disk_bytes,
        )
    };
    let before = held(&engine);
    let compiled = engine.cache_stats().compiled;
    assert_eq!(
        (before.0, before.2),
        (3, 3),
        "the three plugins company() uploaded"
    );
    for i in 0..10 {
        let (st, v) = s
            .upload(
                "harbin",
                &c.integrator,
                heatbill_fixtures::many_functions(300 + i),
            )
            .await;
        error(st, &v, 422, "not a heatbill rules plugin");
    }
    assert_eq!(
        engine.cache_stats().compiled,
        compiled + 10,
        "each was compiled"
    );
    assert_eq!(held(&engine), before, "{:?}", engine.cache_stats());
    s.stop().await;
}

/// One company cannot hold every engine slot: its requests queue for its own share
/// (`api.engine_slots_per_company`, half the slots by default), and another company's dry run
/// is served from the slots it cannot take. The review's 8 uploads of a compile-time bomb took
/// all 4 slots and delayed another company's dry run by 29.1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_company_cannot_take_every_engine_slot() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.engine_slots = 4;
        st.api.queue_wait_ms = 120_000;
    })
    .await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "qiqihar").await;
    for c in [&a, &b] {
        let (st, v) = import(&s, c, "customers", CUSTOMERS).await;
        ok(st, &v, 200);
    }
    assert_eq!(s.app.settings.api.company_engine_slots(), 2);
    let a_id = company_id(&db, "harbin").await;
    // Company A's requests hold its whole share, as its slow uploads did.
    let held = vec![
        s.app.engine_slot(a_id).await.unwrap(),
        s.app.engine_slot(a_id).await.unwrap(),
    ];
    assert_eq!(s.app.engine_slots.available_permits(), 2);
    // A's next request queues for A's share...
    let dry_run = |c: &Company| {
        s.req(
            reqwest::Method::POST,
            &format!("/v1/companies/{}/dry-run", c.slug),
            Some(&c.staff),
        )
        .json(&json!({"customer": "W2", "date": "2025-10-22"}))
        .send()
    };
    let queued = tokio::spawn(dry_run(&a));
    let queue = &s.app.engine_queue;
    for _ in 0..6_000 {
        if queue.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        queue.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "company A's third request never reached the engine-slot queue"
    );
    // ...while B's is served at once, from the slots A's requests cannot take.
    let resp = tokio::time::timeout(Duration::from_secs(60), dry_run(&b))
        .await
        .expect("B's dry run was not answered while A held its share")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !queued.is_finished(),
        "A's request did not wait for A's share"
    );
    assert_eq!(queue.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        s.app.engine_slots.available_permits(),
        2,
        "A's waiting request holds no slot of the server's"
    );
    // Once A's share is free, A's request is served.
    drop(held);
    let resp = tokio::time::timeout(Duration::from_secs(60), queued)
        .await
        .expect("A's request was not served once its share was free")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.app.engine_slots.available_permits(), 4);
    s.stop().await;
}

/// A request that waits past `api.queue_wait_ms` for its company's share is answered 503 with
/// `Retry-After` and a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_over_its_share_is_told_to_retry() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.engine_slots = 2;
        st.api.queue_wait_ms = 200;
    })
    .await;
    let c = company(&s, "harbin").await;
    let id = company_id(&db, "harbin").await;
    let _held = s.app.engine_slot(id).await.unwrap();
    let resp = s
        .req(
            reqwest::Method::POST,
            "/v1/companies/harbin/dry-run",
            Some(&c.staff),
        )
        .json(&json!({"customer": "W2", "date": "2025-10-22"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 503, "(api.engine_slots_per_company)");
    assert_eq!(v["error"]["code"], "unavailable");
    s.stop().await;
}

/// Writes the head of a plugin upload of `length` bytes and `sent` bytes of its body on a raw
/// connection, and leaves the rest unsent: an upload in flight.
async fn start_upload(
    s: &Server,
    token: &str,
    length: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = s.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/companies/harbin/plugins HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer \
         {token}\r\ncontent-type: application/wasm\r\ncontent-length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&vec![0u8; sent]).await.unwrap();
    conn
}

/// Upload bodies are admitted before they are read: an upload that does not fit among the
/// bytes in flight (`api.max_upload_bytes_in_flight`) waits with its body unread, then gets
/// 503 with `Retry-After`; the one in flight is answered as usual, and the room is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_waits_for_room_among_the_bytes_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.max_upload_bytes_in_flight = 1 << 20;
        st.api.queue_wait_ms = 300;
    })
    .await;
    let c = company(&s, "harbin").await;
    // An upload of 1 MiB, half sent: it holds the whole budget.
    let mut first = start_upload(&s, &c.integrator, 1 << 20, 1 << 19).await;
    for _ in 0..6_000 {
        if s.app.upload_bytes.available_permits() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.app.upload_bytes.available_permits(),
        0,
        "the first upload was never admitted"
    );
    // Another upload waits, then is told to come back.
    let resp = s
        .req(
            reqwest::Method::POST,
            "/v1/companies/harbin/plugins",
            Some(&c.integrator),
        )
        .header("content-type", "application/wasm")
        .body(component("season"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 503, "(api.max_upload_bytes_in_flight)");
    // The first upload completes and is answered (it is not a component).
    first.write_all(&vec![0u8; 1 << 19]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("not a plugin heatbill can run") {
            let n = first.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the first upload was not answered");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 422"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(first);
    for _ in 0..6_000 {
        if s.app.upload_bytes.available_permits() == 1 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.app.upload_bytes.available_permits(), 1 << 20);
    // With the room back, the second upload goes through.
    let (st, v) = s.upload("harbin", &c.integrator, component("season")).await;
    ok(st, &v, 200);
    // A declared length over the cap is refused before anything is read.
    let (st, v) = s
        .upload("harbin", &c.integrator, vec![0u8; (32 << 20) + (128 << 10)])
        .await;
    error(st, &v, 413, "(api.max_upload_bytes)");
    s.stop().await;
}

/// Progress streams are capped per company as well as in all: one company holding its share
/// of streams gets 503 for the next, another company still gets its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_are_bounded_per_company() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| {
        st.api.max_event_streams = 10;
        st.api.max_event_streams_per_company = 2;
    })
    .await;
    let a = company(&s, "harbin").await;
    let b = company(&s, "qiqihar").await;
    let mut ids = Vec::new();
    for c in [&a, &b] {
        let (st, v) = import(&s, c, "customers", CUSTOMERS).await;
        ok(st, &v, 200);
        let (st, v) = trigger(&s, c, "2025-10-20", "k").await;
        ok(st, &v, 202);
        ids.push(v["id"].as_i64().unwrap());
    }
    let a_id = company_id(&db, "harbin").await;
    // Company A's read-only token holds its two streams.
    let held: Vec<_> = (0..2)
        .map(|_| s.app.event_streams.open(a_id, 10, 2).unwrap())
        .collect();
    let (st, v) = s
        .get(
            &format!("/v1/companies/harbin/runs/{}/events", ids[0]),
            &a.reader,
        )
        .await;
    error(st, &v, 503, "(api.max_event_streams_per_company)");
    let resp = s
        .req(
            reqwest::Method::GET,
            &format!("/v1/companies/qiqihar/runs/{}/events", ids[1]),
            Some(&b.reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "another company's stream");
    drop(resp);
    assert_eq!(s.app.event_streams.open_now(a_id).1, 2);
    drop(held);
    assert_eq!(s.app.event_streams.open_now(a_id).1, 0);
    s.stop().await;
}

/// Path and query errors, methods an endpoint does not take, and bodies over the cap answer
/// the one JSON error shape (axum's own answers are plain text or empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_query_and_method_errors_answer_the_json_error_shape() {
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |_| {}).await;
    let c = company(&s, "harbin").await;
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            "/v1/companies/harbin/tokens/21833925505062113280",
            Some(OPERATOR),
            None,
        )
        .await;
    error(st, &v, 400, "21833925505062113280");
    assert_eq!(v["error"]["code"], "invalid-request");
    let (st, v) = s
        .get("/v1/companies/harbin/bills?date=yesterday", &c.reader)
        .await;
    error(st, &v, 400, "query");
    let (st, v) = s
        .get("/v1/companies/harbin/runs?limit=-1&colour=red", &c.reader)
        .await;
    error(st, &v, 400, "query");
    let (st, v) = s
        .get("/v1/companies/harbin/runs/1%1b[31mx", &c.reader)
        .await;
    error(st, &v, 400, "");
    assert!(
        !v["error"]["message"].as_str().unwrap().contains('\x1b'),
        "{v:#}"
    );
    let resp = s
        .req(reqwest::Method::PATCH, "/v1/companies", Some(OPERATOR))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("allow"), "{:?}", resp.headers());
    let st = resp.status();
    let v: Value = resp.json().await.unwrap();
    error(st, &v, 405, "does not take PATCH");
    assert_eq!(v["error"]["code"], "method-not-allowed");
    let (st, v) = s
        .raw(
            reqwest::Method::PUT,
            "/v1/companies/harbin/schedule",
            OPERATOR,
            "application/json",
            vec![b' '; 2 << 20],
        )
        .await;
    error(st, &v, 413, "");
    s.stop().await;
}

/// The environment variable that makes [`server_in_a_child_process`] serve: the `api`
/// settings, as JSON.
const CHILD_SERVER: &str = "HEATBILL_TEST_CHILD_SERVER";

/// Not a test of its own: with `HEATBILL_TEST_CHILD_SERVER` set, this test binary, started by
/// [`concurrent_uploads_hold_bounded_memory`], serves the API on a loopback port in a process
/// of its own (so that its memory is the server's alone), prints `listening <url>`, and serves
/// until its stdin closes. Without the variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_in_a_child_process() {
    let Ok(api) = std::env::var(CHILD_SERVER) else {
        return;
    };
    let api: heatbill_runtime::settings::ApiSettings = serde_json::from_str(&api).unwrap();
    let db = TestDb::sqlite().await;
    let s = Server::start(&db, |st| st.api = api).await;
    println!("listening {}", s.base);
    let _ = tokio::task::spawn_blocking(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    })
    .await;
    s.stop().await;
}

/// Reads a figure (kB) of `/proc/<pid>/status`, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse().ok())
        .unwrap();
    kb * 1024
}

/// The review's finding: upload bodies were read whole before waiting for an engine slot, so
/// 50 concurrent 33 MB uploads took the server to 1,730 MB. Now an upload is admitted (its
/// `Content-Length` among `api.max_upload_bytes_in_flight`) before its body is read: 16
/// concurrent 30 MB uploads against a 64 MiB budget raise the server's peak memory by about the
/// budget, not by the 480 MB sent. The server runs in a child process, whose peak resident
/// memory (VmHWM, reset through /proc/<pid>/clear_refs) is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_hold_bounded_memory() {
    use std::io::BufRead;
    const UPLOADS: usize = 16;
    const SIZE: usize = 30_000_000;
    const BUDGET: usize = 64 << 20;
    let api = heatbill_runtime::settings::ApiSettings {
        max_upload_bytes_in_flight: BUDGET,
        queue_wait_ms: 300_000,
        scheduler: false,
        ..Default::default()
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "api::limits::server_in_a_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SERVER, serde_json::to_string(&api).unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // The test harness's "test … ... " may begin the line.
            if let Some((_, url)) = line.split_once("listening ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            panic!("the child server did not start within 120 s");
        }
    };
    let http = reqwest::Client::new();
    let (st, v): (StatusCode, Value) = {
        let r = http
            .post(format!("{base}/v1/companies"))
            .bearer_auth(OPERATOR)
            .json(&json!({"slug": "harbin", "name": "Harbin Heat", "time_zone": "Asia/Harbin"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    };
    ok(st, &v, 201);
    let r = http
        .post(format!("{base}/v1/companies/harbin/tokens"))
        .bearer_auth(OPERATOR)
        .json(&json!({"role": "integrator", "label": "uploads"}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Settle, then reset the peak to the resident memory now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = proc_status(pid, "VmRSS:");
    let body: &'static [u8] = Box::leak(vec![7u8; SIZE].into_boxed_slice());
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let r = http
                .post(format!("{base}/v1/companies/harbin/plugins"))
                .bearer_auth(&token)
                .header("content-type", "application/wasm")
                .body(body)
                .send();
            tokio::spawn(async move {
                let r = r.await.unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    for u in uploads {
        let (st, text) = tokio::time::timeout(Duration::from_secs(300), u)
            .await
            .expect("an upload was not answered within 300 s")
            .unwrap();
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        assert!(text.contains("not a plugin heatbill can run"), "{text}");
    }
    let peak = proc_status(pid, "VmHWM:");
    drop(child.stdin.take());
    let stopped = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    let grew = peak.saturating_sub(before);
    eprintln!(
        "{UPLOADS} concurrent uploads of {SIZE} bytes, {BUDGET} bytes in flight: resident \
         {} MB before, peak {} MB (+{} MB)",
        before / 1_000_000,
        peak / 1_000_000,
        grew / 1_000_000
    );
    // The budget, and room for the allocator and the server's own buffers; without admission
    // the bodies alone are 480 MB.
    assert!(
        grew < (BUDGET as u64) * 2 + (40 << 20),
        "the server's peak grew by {grew} bytes for {UPLOADS} uploads of {SIZE} bytes"
    );
}

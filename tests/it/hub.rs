//! Downloading from the hub, against a stand-in hub on loopback that answers the calls
//! hf-hub makes (repo info, ranged `resolve/` GETs with etag and commit headers): the files
//! land in the cache as huggingface_hub lays them out, and a second run needs no network.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const COMMIT: &str = "1111111111222222222233333333334444444444";
const FILES: [&str; 2] = ["open_clip_config.json", "open_clip_pytorch_model.bin"];

/// Each request's Authorization header ("" when none), in order.
type Auth = Arc<Mutex<Vec<String>>>;

/// Serves at most `limit` connections, then stops; returns the base URL, a request counter
/// and the requests' Authorization headers.
fn fake_hub(limit: usize) -> (String, Arc<AtomicUsize>, Auth) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let auth = Auth::default();
    let (seen, seen_auth) = (count.clone(), auth.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(limit).flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream, &seen_auth);
        }
    });
    (url, count, auth)
}

fn answer(mut stream: TcpStream, auth: &Auth) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = v.trim().to_string();
            }
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap();
            range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
        }
    }
    auth.lock().unwrap().push(authorization);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, headers, body) = if path == "/api/models/yyupenn/whyxrayclip/revision/main" {
        let siblings: Vec<_> = FILES
            .iter()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({"sha": COMMIT, "siblings": siblings})
            .to_string()
            .into_bytes();
        (
            "200 OK",
            String::from("Content-Type: application/json\r\n"),
            body,
        )
    } else if let Some(file) = path
        .strip_prefix("/yyupenn/whyxrayclip/resolve/main/")
        .filter(|f| FILES.contains(f))
    {
        let data = std::fs::read(model_dir("tiny-gelu-p14").join(file)).unwrap();
        let (a, b) = range.unwrap_or((0, None));
        let b = b.unwrap_or(data.len() - 1).min(data.len() - 1);
        let etag = format!("\"etag-{}\"", file.len());
        let h = format!(
            "X-Repo-Commit: {COMMIT}\r\nETag: {etag}\r\nContent-Range: bytes {a}-{b}/{}\r\n",
            data.len()
        );
        ("206 Partial Content", h, data[a..=b].to_vec())
    } else {
        ("404 Not Found", String::new(), b"not found".to_vec())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)
}

/// One CSV row of the five fixture labels on nih_00000001_000.png against open_clip's
/// probabilities at the model's scale (expected.json, tiny-gelu-p14).
fn assert_reference_probabilities(csv: &str) {
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    let got: Vec<f32> = lines[1]
        .split(',')
        .skip(1)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap())
        .collect();
    let i = images("tiny-gelu-p14")
        .into_iter()
        .find(|(n, _, _)| n == "nih_00000001_000.png")
        .unwrap()
        .2;
    let want = &matrix(&model_expected("tiny-gelu-p14")["probs_scale_model"])[i];
    assert_eq!(got.len(), want.len(), "{csv}");
    assert!(max_abs_diff(&got, want) <= 5e-5, "{got:?} vs {want:?}");
}

#[test]
fn downloads_into_the_python_cache_layout_then_runs_offline() {
    let (url, requests, auth) = fake_hub(20);
    let cache = tempfile::tempdir().unwrap();
    let labels =
        "enlarged heart,pleural effusion,no finding,pneumothorax,a chest x-ray showing atelectasis";
    let png = "tests/data/nih_00000001_000.png";
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("HF_HUB_OFFLINE");
    cmd.env("HF_ENDPOINT", &url)
        .env("HF_TOKEN", "hf_test_token")
        .args(["-q", "classify", png, "--labels", labels, "--format", "csv"]);
    let online = run(&mut cmd);
    assert_eq!(online.status.code(), Some(0), "{}", stderr(&online));
    assert!(
        requests.load(Ordering::SeqCst) >= 3,
        "info + one GET per file at least"
    );
    // HF_TOKEN goes to the hub as a bearer token, on every request.
    let sent = auth.lock().unwrap().clone();
    assert_eq!(sent.len(), requests.load(Ordering::SeqCst));
    assert!(sent.iter().all(|a| a == "Bearer hf_test_token"), "{sent:?}");
    // The downloaded model scores as open_clip does (the reference, not another run).
    assert_reference_probabilities(&stdout(&online));

    let repo = cache.path().join("models--yyupenn--whyxrayclip");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    for f in FILES {
        let link = repo.join("snapshots").join(COMMIT).join(f);
        let target = std::fs::read_link(&link).unwrap();
        assert!(
            target.to_string_lossy().contains("blobs/"),
            "{f} -> {}",
            target.display()
        );
        assert_eq!(
            std::fs::read(&link).unwrap(),
            std::fs::read(model_dir("tiny-gelu-p14").join(f)).unwrap()
        );
    }

    let before = requests.load(Ordering::SeqCst);
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env("HF_HUB_CACHE", cache.path())
        .env("HF_HUB_OFFLINE", "1");
    cmd.env("HF_ENDPOINT", &url)
        .args(["classify", png, "--labels", labels, "--format", "csv"]);
    let offline = run(&mut cmd);
    assert_eq!(offline.status.code(), Some(0), "{}", stderr(&offline));
    assert_reference_probabilities(&stdout(&offline));
    assert_eq!(stdout(&offline), stdout(&online));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "no request while offline"
    );
}

#[test]
fn an_unreachable_hub_is_a_fatal_error_naming_the_model() {
    // A port bound then dropped could be taken by another process before whyxray connects:
    // keep the listener for the whole run and close each connection unanswered instead.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hung_up = Arc::new(AtomicUsize::new(0));
    let count = hung_up.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("HF_HUB_OFFLINE");
    cmd.env("HF_ENDPOINT", &url)
        .args(["classify", "tests/data/nih_00000001_000.png", "-l", "a,b"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot download model yyupenn/whyxrayclip"),
        "{}",
        stderr(&out)
    );
    assert!(
        hung_up.load(Ordering::SeqCst) >= 1,
        "whyxray asked the stand-in hub"
    );
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "nothing cached"
    );
}

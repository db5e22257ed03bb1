//! Downloading from the hub, against a stand-in hub on loopback that answers the calls
//! hf-hub makes (repo info, ranged `resolve/` GETs with etag and commit headers): the files
//! land in the cache as huggingface_hub lays them out, and a second run needs no network.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const COMMIT: &str = "1111111111222222222233333333334444444444";
const FILES: [&str; 2] = ["open_clip_config.json", "open_clip_pytorch_model.bin"];

/// Serves at most `limit` connections, then stops; returns the base URL and a request counter.
fn fake_hub(limit: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(limit).flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream);
        }
    });
    (url, count)
}

fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap();
            range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
        }
    }
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

#[test]
fn downloads_into_the_python_cache_layout_then_runs_offline() {
    let (url, requests) = fake_hub(20);
    let cache = tempfile::tempdir().unwrap();
    let labels =
        "enlarged heart,pleural effusion,no finding,pneumothorax,a chest x-ray showing atelectasis";
    let png = "tests/data/nih_00000001_000.png";
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("HF_HUB_OFFLINE");
    cmd.env("HF_ENDPOINT", &url)
        .args(["-q", "classify", png, "--labels", labels, "--format", "csv"]);
    let online = run(&mut cmd);
    assert_eq!(online.status.code(), Some(0), "{}", stderr(&online));
    assert!(
        requests.load(Ordering::SeqCst) >= 3,
        "info + one GET per file at least"
    );

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
    assert_eq!(stdout(&offline), stdout(&online));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        before,
        "no request while offline"
    );
}

#[test]
fn an_unreachable_hub_is_a_fatal_error_naming_the_model() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
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
}

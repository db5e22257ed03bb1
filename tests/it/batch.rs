//! Batch scoring at scale through the real executable: path lists and filters, resume after
//! SIGKILL, shards whose union is the full run, npy streaming with its sidecar, whole lines only.

use crate::support::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

const SMALL: &str = "tests/data/nih_small_100x80.png";

/// `n` images (symlinks to a few real files, one unreadable) in a two-level tree.
fn dataset(dir: &Path, n: usize) -> Vec<PathBuf> {
    let sources = [
        "tests/data/nih_00027426_000_512.png",
        "tests/data/nih_gray_q90.jpg",
        SMALL,
    ];
    (0..n)
        .map(|i| {
            let sub = dir.join(format!("p{:02}", i % 7));
            std::fs::create_dir_all(&sub).unwrap();
            let ext = if i % 3 == 1 { "jpg" } else { "png" };
            let path = sub.join(format!("img{i:05}.{ext}"));
            if i == 5 {
                std::fs::write(&path, b"broken").unwrap();
            } else {
                std::os::unix::fs::symlink(root().join(sources[i % 3]), &path).unwrap();
            }
            path
        })
        .collect()
}

fn classify_cmd(args: &[&str]) -> std::process::Command {
    let mut cmd = whyxray();
    cmd.current_dir(root()).arg("classify").args(args);
    cmd.args(["-l", "enlarged heart,pleural effusion", "-m"])
        .arg(model_dir("tiny-gelu-p14"));
    cmd
}

fn csv_rows(text: &str) -> Vec<String> {
    text.lines().skip(1).map(String::from).collect()
}

#[test]
fn files_from_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let files = dataset(tmp.path(), 30);
    let list = tmp.path().join("list.txt");
    std::fs::write(
        &list,
        format!("{}\n\n{}\n", files[3].display(), files[0].display()),
    )
    .unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = run(&mut classify_cmd(&[
        "--files-from",
        list.to_str().unwrap(),
        "--format",
        "csv",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&stdout(&out));
    assert!(
        rows[0].starts_with(&files[3].display().to_string())
            && rows[1].starts_with(&files[0].display().to_string())
    );

    let out = run(&mut classify_cmd(&[
        d,
        "--include",
        "*.jpg",
        "--exclude",
        "p01/**",
        "--format",
        "csv",
    ]));
    let rows = csv_rows(&stdout(&out));
    let want: Vec<String> = files
        .iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with(".jpg") && !p.contains("/p01/"))
        .collect();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    let got: Vec<String> = rows
        .iter()
        .map(|r| r.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(got, want_sorted, "sorted walk, filtered");
}

#[test]
fn shards_union_is_the_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 60);
    let d = tmp.path().to_str().unwrap();
    let full = stdout(&run(&mut classify_cmd(&[
        d,
        "--format",
        "csv",
        "--batch-size",
        "7",
    ])));
    let mut union = Vec::new();
    for k in 0..4 {
        let shard = format!("{k}/4");
        let part = stdout(&run(&mut classify_cmd(&[
            d, "--format", "csv", "--shard", &shard, "-j", "1",
        ])));
        let rows = csv_rows(&part);
        assert!(
            !rows.is_empty() && rows.len() < 60,
            "shard {k}: {} rows",
            rows.len()
        );
        union.extend(rows);
    }
    let mut all = csv_rows(&full);
    assert_eq!(all.len(), 60);
    all.sort();
    union.sort();
    assert_eq!(union, all, "row for row");
}

#[test]
fn output_is_in_input_order_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = dataset(tmp.path(), 40);
    paths.sort(); // directories are walked in name order
    let d = tmp.path().to_str().unwrap();
    let one = stdout(&run(&mut classify_cmd(&[
        d,
        "--format",
        "csv",
        "-j",
        "1",
        "--batch-size",
        "1",
    ])));
    let many = stdout(&run(&mut classify_cmd(&[
        d,
        "--format",
        "csv",
        "-j",
        "8",
        "--batch-size",
        "16",
    ])));
    let files = |t: &str| {
        t.lines()
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let want: Vec<String> = std::iter::once("file".to_string())
        .chain(paths.iter().map(|p| p.display().to_string()))
        .collect();
    assert_eq!(files(&one), want, "input order at -j 1");
    assert_eq!(files(&many), want, "input order at -j 8");
    // And every row is open_clip's answer for the file the path links to, whatever -j and the
    // batch size: over these two labels, softmax is the five-label reference renormalised
    // (p_i / (p_0 + p_1)); the broken file is an error row at its place.
    for text in [&one, &many] {
        for row in text.lines().skip(1) {
            // file, two probabilities, error (quoted, and may hold commas)
            let f: Vec<&str> = row.splitn(4, ',').collect();
            assert_eq!(f.len(), 4, "{row}");
            if f[0].ends_with("img00005.png") {
                assert!(f[1].is_empty() && f[3].contains("not a PNG"), "{row}");
                continue;
            }
            assert!(f[3].is_empty(), "{row}");
            let source = std::fs::read_link(f[0]).unwrap();
            let name = source.file_name().unwrap().to_str().unwrap();
            let p = expected_row("tiny-gelu-p14", name);
            let want = [p[0] / (p[0] + p[1]), p[1] / (p[0] + p[1])];
            let got: Vec<f32> = f[1..3].iter().map(|v| v.parse().unwrap()).collect();
            assert!(max_abs_diff(&got, &want) <= 5e-5, "{row} vs {want:?}");
        }
    }
}

/// Kills a run with SIGKILL part-way (checking, while it runs, that the file only ever holds
/// whole lines), resumes it, and finds every input exactly once with its right result.
#[test]
fn resume_after_sigkill_gives_every_input_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = 400;
    let paths = dataset(&data, n);
    let d = data.to_str().unwrap();
    let out = tmp.path().join("scores.csv");
    let o = out.to_str().unwrap();
    // The first run reads its paths from stdin, given 40 of the 400 and never the rest: it
    // cannot finish before it is killed, however slow or fast the machine.
    let mut child = classify_cmd(&["-", "-o", o, "--batch-size", "4", "-j", "1"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut feed = child.stdin.take().unwrap();
    for p in paths.iter().take(40) {
        writeln!(feed, "{}", p.display()).unwrap();
    }
    feed.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a reader saw half a line"
        );
        if text.lines().count() > 20 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(std::time::Instant::now() < deadline, "no rows in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(feed);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.ends_with('\n'), "a killed run left half a line");
    assert!(written.lines().count() <= 41, "only the 40 paths given");

    let resumed = run(&mut classify_cmd(&[
        d,
        "-o",
        o,
        "--resume",
        "--batch-size",
        "16",
    ]));
    assert_eq!(
        resumed.status.code(),
        Some(1),
        "the broken file fails: {}",
        stderr(&resumed)
    );
    assert!(
        stderr(&resumed).contains("resuming"),
        "{}",
        stderr(&resumed)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut files: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        text.lines().next().unwrap(),
        "file,enlarged heart,pleural effusion,error"
    );
    files.sort();
    let before = files.len();
    files.dedup();
    assert_eq!(files.len(), before, "an input appears twice");
    assert_eq!(files.len(), n, "every input once");

    let fresh = stdout(&run(&mut classify_cmd(&[d, "--format", "csv"])));
    let mut a = csv_rows(&fresh);
    let mut b = csv_rows(&text);
    a.sort();
    b.sort();
    assert_eq!(a, b, "resumed file = uninterrupted run, after sorting");

    // Resuming a finished file retries only the failed row and changes nothing else.
    let again = run(&mut classify_cmd(&[d, "-o", o, "--resume"]));
    assert_eq!(again.status.code(), Some(1));
    let mut c = csv_rows(&std::fs::read_to_string(&out).unwrap());
    c.sort();
    assert_eq!(c, a);
}

#[test]
fn embed_npy_streams_rows_with_a_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let files = dataset(&data, 12);
    let npy = tmp.path().join("feats.npy");
    let mut cmd = whyxray();
    cmd.current_dir(root()).args([
        "embed",
        data.to_str().unwrap(),
        "--format",
        "npy",
        "--batch-size",
        "5",
        "-o",
    ]);
    cmd.arg(&npy)
        .args(["--text", "pleural effusion", "-m"])
        .arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let bytes = std::fs::read(&npy).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'shape': (13, 32)"), "{header}");
    let data_f32: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(data_f32.len(), 13 * 32);

    let side = std::fs::read_to_string(tmp.path().join("feats.npy.paths.tsv")).unwrap();
    let lines: Vec<&str> = side.lines().collect();
    assert_eq!(lines[0], "kind\titem\terror");
    assert_eq!(lines.len(), 14);
    let mut sorted: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    sorted.sort();
    for (i, line) in lines[1..13].iter().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!((f[0], f[1]), ("image", sorted[i].as_str()));
        let row = &data_f32[i * 32..(i + 1) * 32];
        if f[1].ends_with("img00005.png") {
            assert!(!f[2].is_empty() && row.iter().all(|v| v.is_nan()), "{line}");
        } else {
            assert!(
                f[2].is_empty() && row.iter().all(|v| v.is_finite()),
                "{line}"
            );
        }
    }
    assert_eq!(lines[13], "text\tpleural effusion\t");
}

#[test]
fn ctrl_c_stops_after_writing_whole_rows_with_exit_130() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let paths = dataset(&data, 400);
    let out = tmp.path().join("scores.jsonl");
    let args = [
        "-",
        "-o",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
        "--batch-size",
        "4",
        "-j",
        "1",
    ];
    // Paths come on stdin, 40 of them first: the signal lands while the run is still open,
    // however fast the machine; 4 more after it give the run a batch to stop after.
    let mut child = classify_cmd(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut feed = child.stdin.take().unwrap();
    let give = |feed: &mut std::process::ChildStdin, ps: &[PathBuf]| {
        for p in ps {
            writeln!(feed, "{}", p.display()).unwrap();
        }
        feed.flush().unwrap();
    };
    give(&mut feed, &paths[..40]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .count()
        < 20
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(std::time::Instant::now() < deadline, "no rows in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    give(&mut feed, &paths[40..44]);
    drop(feed);
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130), "{}", stderr(&done));
    assert!(stderr(&done).contains("interrupted"));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        rows.len() >= 20 && rows.len() <= 44 && rows.len().is_multiple_of(4),
        "{} rows",
        rows.len()
    );
}

//! Documented behaviour with no other test, through the executable: eval's path matching,
//! the `hf-hub:` and `local-dir:` model prefixes, shard keys that ignore the mount point, a
//! killed npy export that still loads, a checkpoint with an extra tensor, the summary line.

use crate::support::*;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

const PNG: &str = "tests/data/nih_00000001_000.png";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A truth path that is a `/`-suffix of two scored paths is refused, naming both; one that
/// is a suffix of exactly one is paired with it.
#[test]
fn eval_pairs_a_unique_path_suffix_and_refuses_an_ambiguous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "scores.csv",
        "file,a,b,error\n/mnt/site1/x/1.png,0.9,0.1,\n/mnt/site2/x/1.png,0.2,0.8,\n\
         /mnt/site1/x/2.png,0.3,0.7,\n",
    );
    write(
        d,
        "ambiguous.csv",
        "file,label\nx/1.png,a\nsite1/x/2.png,b\n",
    );
    write(
        d,
        "unique.csv",
        "file,label\nsite1/x/1.png,a\nsite2/x/1.png,b\nx/2.png,b\n",
    );
    let eval = |truth: &str| {
        run(whyxray()
            .current_dir(d)
            .args(["eval", "--truth", truth, "--scores", "scores.csv"])
            .args(["--json", "-", "--bootstrap", "0"]))
    };
    let out = eval("ambiguous.csv");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("x/1.png")
            && err.contains("/mnt/site1/x/1.png")
            && err.contains("/mnt/site2/x/1.png")
            && err.contains("several scored files"),
        "{err}"
    );
    let out = eval("unique.csv");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // All three rows paired, each to the right file: every prediction is right.
    assert_eq!(r["n"], 3, "{r}");
    assert_eq!(r["accuracy"]["value"], 1.0, "{r}");
}

/// `local-dir:DIR` is the directory, `hf-hub:ID` the hub id (open_clip's spellings): the
/// same probabilities as open_clip's for each.
#[test]
fn hf_hub_and_local_dir_prefixes_name_the_same_models() {
    let m = "tiny-gelu-p14";
    let dir = model_dir(m).display().to_string();
    let want = expected_row(m, "nih_00000001_000.png");
    for model in [
        format!("local-dir:{dir}"),
        "hf-hub:yyupenn/whyxrayclip".into(),
    ] {
        let out = run(whyxray()
            .current_dir(root())
            .env("HF_HUB_CACHE", root().join("tests/fixtures/hub"))
            .args(["classify", PNG, "--labels", &labels(m), "--format", "csv"])
            .args(["-m", &model]));
        assert_eq!(out.status.code(), Some(0), "{model}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let got: Vec<f32> = lines[1]
            .split(',')
            .skip(1)
            .take(5)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(got.len(), 5);
        assert!(max_abs_diff(&got, &want) <= 5e-5, "{model}: {got:?}");
    }
    let out = run(whyxray().args(["classify", PNG, "-l", "a,b", "-m", "local-dir:/nonexistent"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}

/// The same files under two mount points split into the same shards: the key is the path
/// below the directory given (its FNV-1a hash is pinned in src/lib.rs).
#[test]
fn shards_are_the_same_under_two_mount_points() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..9).map(|i| format!("sub/img{i:02}.png")).collect();
    let mounts = [tmp.path().join("a/data"), tmp.path().join("mnt/b/c/data")];
    for m in &mounts {
        std::fs::create_dir_all(m.join("sub")).unwrap();
        for n in &names {
            std::fs::copy(root().join(PNG), m.join(n)).unwrap();
        }
    }
    let kept = |mount: &Path, shard: &str| -> Vec<String> {
        let out = run(whyxray()
            .arg("classify")
            .arg(mount)
            .args(["-l", "a,b", "--format", "csv", "--shard", shard, "-m"])
            .arg(model_dir("tiny-gelu-p14")));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let prefix = format!("{}/", mount.display());
        stdout(&out)
            .lines()
            .skip(1)
            .map(|l| {
                let f = l.split(',').next().unwrap();
                f.strip_prefix(&prefix).unwrap().to_string()
            })
            .collect()
    };
    let mut union = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let (a, b) = (kept(&mounts[0], &shard), kept(&mounts[1], &shard));
        assert_eq!(a, b, "shard {shard}");
        union.extend(a);
    }
    union.sort();
    assert_eq!(union, names, "the shards together are every file once");
}

/// A `--format npy` export killed mid-run is still an array numpy loads: the header's row count
/// never runs ahead of the rows and sidecar lines on disk, and those rows are whole.
#[test]
fn a_killed_npy_export_is_a_loadable_array() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let paths: Vec<String> = (0..40)
        .map(|i| {
            let p = data.join(format!("img{i:03}.png"));
            std::fs::copy(root().join(PNG), &p).unwrap();
            p.display().to_string()
        })
        .collect();
    let npy = tmp.path().join("f.npy");
    // Paths come from stdin and the last never does: the run cannot end before the kill.
    let mut child = whyxray()
        .args([
            "embed",
            "-",
            "--format",
            "npy",
            "--batch-size",
            "2",
            "-j",
            "1",
            "-o",
        ])
        .arg(&npy)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p14"))
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut feed = child.stdin.take().unwrap();
    for p in &paths {
        writeln!(feed, "{p}").unwrap();
    }
    feed.flush().unwrap();
    let header_rows = |bytes: &[u8]| -> Option<(usize, usize)> {
        let len = u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize;
        let h = std::str::from_utf8(bytes.get(10..10 + len)?).ok()?;
        let shape = h.split("'shape': (").nth(1)?.split(')').next()?;
        Some((shape.split(',').next()?.trim().parse().ok()?, 10 + len))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while header_rows(&std::fs::read(&npy).unwrap_or_default()).is_none_or(|(r, _)| r < 6) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(std::time::Instant::now() < deadline, "no rows in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(feed);
    let bytes = std::fs::read(&npy).unwrap();
    let (rows, data_at) = header_rows(&bytes).unwrap();
    assert!(
        bytes[..data_at].starts_with(b"\x93NUMPY\x01\x00") && data_at % 64 == 0,
        "npy 1.0, aligned header"
    );
    let cols = 32;
    let header = std::str::from_utf8(&bytes[10..data_at]).unwrap();
    assert!(
        header.contains(&format!("'shape': ({rows}, {cols})")) && header.contains("'<f4'"),
        "{header}"
    );
    assert!(bytes.len() >= data_at + rows * cols * 4, "rows missing");
    let values: Vec<f32> = bytes[data_at..data_at + rows * cols * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for row in values.chunks(cols) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "a row is not a whole embedding");
    }
    let side = std::fs::read_to_string(tmp.path().join("f.npy.paths.tsv")).unwrap();
    let items: Vec<&str> = side.lines().skip(1).collect();
    assert!(items.len() >= rows, "sidecar behind the header");
    for (line, p) in items.iter().take(rows).zip(&paths) {
        assert_eq!(*line, format!("image\t{p}\t"));
    }
}

/// A checkpoint with a tensor the config does not use is refused, naming it
/// (`load_state_dict(strict=True)`), before any image is read.
#[test]
fn a_checkpoint_with_an_extra_tensor_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model_dir("tiny-gelu-p14");
    std::fs::copy(
        src.join("open_clip_config.json"),
        tmp.path().join("open_clip_config.json"),
    )
    .unwrap();
    let bytes = std::fs::read(src.join("open_clip_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let extra = [0u8; 16];
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    views.push((
        "visual.extra_head.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &extra).unwrap(),
    ));
    safetensors::serialize_to_file(views, None, &tmp.path().join("open_clip_model.safetensors"))
        .unwrap();
    let out = run(whyxray()
        .args(["classify", PNG, "-l", "a,b", "-m"])
        .arg(tmp.path()));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("visual.extra_head.weight"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

/// The summary line on stderr counts what was scored and what failed; `-q` drops it.
#[test]
fn the_summary_line_counts_and_quiet_drops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, "not an image").unwrap();
    let go = |quiet: bool| {
        let mut cmd = whyxray();
        cmd.current_dir(root())
            .args(["classify", PNG, PNG])
            .arg(&bad)
            .args(["-l", "a,b", "-m"])
            .arg(model_dir("tiny-gelu-p14"));
        if quiet {
            cmd.arg("-q");
        }
        run(&mut cmd)
    };
    let out = go(false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let summary: Vec<&str> = err.lines().filter(|l| l.contains("scored ")).collect();
    assert_eq!(summary.len(), 1, "{err}");
    assert!(summary[0].contains("scored 2, failed 1"), "{err}");
    let quiet = go(true);
    assert_eq!(quiet.status.code(), Some(1));
    assert!(!stderr(&quiet).contains("scored "), "{}", stderr(&quiet));
    // The failure itself is still named, and stdout is the same.
    assert!(stderr(&quiet).contains("bad.png"), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet), stdout(&out));
}
